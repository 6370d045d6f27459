// The smallest mbedTLS 2.28 configuration cryptolib needs: AES (ECB, CBC, CTR),
// and SHA-256 for hashlib.
#ifndef BOARD_MBEDTLS_CONFIG_H
#define BOARD_MBEDTLS_CONFIG_H
#define MBEDTLS_AES_C
#define MBEDTLS_SHA256_C  // hashlib.sha256
#define MBEDTLS_CIPHER_MODE_CBC
#define MBEDTLS_CIPHER_MODE_CTR
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_AES_FEWER_TABLES
#include "mbedtls/check_config.h"
#endif
