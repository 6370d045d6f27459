// F401RE_EMU board: ticks from the Cortex-M SysTick (1 kHz interrupt), delays
// that sleep with WFI, and the GC heap size from the command line (--heap N).
#include <string.h>
#include "py/mphal.h"
#include "py/runtime.h"
#include "semihost.h"

// QEMU's netduinoplus2 runs the core at 168 MHz; SysTick counts core clocks.
#define CORE_HZ (168000000)
#define TICK_RELOAD (CORE_HZ / 1000 - 1)

#define SYST_CSR (*(volatile uint32_t *)0xe000e010)
#define SYST_RVR (*(volatile uint32_t *)0xe000e014)
#define SYST_CVR (*(volatile uint32_t *)0xe000e018)
#define ICSR (*(volatile uint32_t *)0xe000ed04)
#define ICSR_PENDSTSET (1u << 26)

static volatile uint32_t ticks_ms_count;
static char cmdline[512];
static const char *args = NULL;

void SysTick_Handler(void) {
    ticks_ms_count++;
}

static void systick_start(void) {
    if (!(SYST_CSR & 1)) {
        SYST_RVR = TICK_RELOAD;
        SYST_CVR = 0;
        SYST_CSR = 7; // core clock, interrupt, enable
    }
}

mp_uint_t mp_hal_ticks_ms(void) {
    systick_start();
    return ticks_ms_count;
}

mp_uint_t mp_hal_ticks_us(void) {
    systick_start();
    uint32_t ms, val;
    do {
        ms = ticks_ms_count;
        val = SYST_CVR;
    } while (ms != ticks_ms_count);
    return ms * 1000 + (TICK_RELOAD - val) / (CORE_HZ / 1000000);
}

mp_uint_t mp_hal_ticks_cpu(void) {
    return mp_hal_ticks_us();
}

void mp_hal_delay_ms(mp_uint_t ms) {
    mp_uint_t t0 = mp_hal_ticks_ms();
    while (mp_hal_ticks_ms() - t0 < ms) {
        mp_event_wait_ms(1);
    }
}

void mp_hal_delay_us(mp_uint_t us) {
    mp_uint_t t0 = mp_hal_ticks_us();
    while (mp_hal_ticks_us() - t0 < us) {
    }
}

// littlefs stamps files with it: the host's clock (seconds)
uint64_t mp_hal_time_ns(void) {
    return (uint64_t)semihost_call(SH_TIME, NULL) * 1000000000ull;
}

const char *semihost_args(void) {
    if (args == NULL) {
        struct {
            char *buf;
            uint32_t len;
        } a = { cmdline, sizeof(cmdline) - 1 };
        if (semihost_call(SH_GET_CMDLINE, &a) != 0) {
            a.len = 0;
        }
        cmdline[a.len] = 0;
        // skip the image's name
        char *sp = strchr(cmdline, ' ');
        args = sp ? sp + 1 : cmdline + a.len;
    }
    return args;
}

size_t board_heap_bytes(size_t reserved) {
    systick_start();
    const char *p = strstr(semihost_args(), "--heap ");
    if (p != NULL) {
        size_t n = 0;
        for (p += 7; *p >= '0' && *p <= '9'; p++) {
            n = n * 10 + (*p - '0');
        }
        n &= ~(size_t)15;
        if (n >= 16384 && n <= reserved) {
            return n;
        }
    }
    return reserved;
}
