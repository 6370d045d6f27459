// ARM semihosting calls the board uses (QEMU -semihosting): the host's files,
// clock and the emulator's command line.
#ifndef BOARD_SEMIHOST_H
#define BOARD_SEMIHOST_H
#include <stdint.h>
#include <stddef.h>

#define SH_OPEN (0x01)
#define SH_CLOSE (0x02)
#define SH_WRITE (0x05)
#define SH_READ (0x06)
#define SH_SEEK (0x0a)
#define SH_FLEN (0x0c)
#define SH_TIME (0x11)
#define SH_GET_CMDLINE (0x15)

static inline uint32_t semihost_call(uint32_t num, const void *arg) {
    register uint32_t r0 __asm__ ("r0") = num;
    register const void *r1 __asm__ ("r1") = arg;
    __asm__ __volatile__ ("bkpt 0xAB" : "+r" (r0) : "r" (r1) : "memory");
    return r0;
}

// The command line after the image's name (QEMU: -append), NUL-terminated.
const char *semihost_args(void);
#endif
