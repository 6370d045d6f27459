// mbedTLS configuration of the smitp-meter Nucleo build (mbedTLS 3.x, as in
// MicroPython's lib/mbedtls): AES for cryptolib (ECB, CBC, CTR) and SHA-256
// for hashlib; nothing of TLS. Tables in flash: RAM stays for the heap.
#ifndef SMITP_MBEDTLS_CONFIG_BOARD_H
#define SMITP_MBEDTLS_CONFIG_BOARD_H
#define MBEDTLS_AES_C
#define MBEDTLS_CIPHER_MODE_CBC
#define MBEDTLS_CIPHER_MODE_CTR
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_AES_FEWER_TABLES
#define MBEDTLS_SHA256_C
#endif
