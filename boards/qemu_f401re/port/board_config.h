// Settings of the F401RE_EMU board, included before mpconfigport.h.
#define MICROPY_PY_TIME (1)
#define MICROPY_PY_SELECT (1)
#define MICROPY_PY_ASYNCIO (1)
#define MICROPY_PY_CRYPTOLIB (1)
#define MICROPY_SSL_MBEDTLS (1)
#define MICROPY_PY_MACHINE_MEMX (1)
#define MICROPY_ENABLE_SCHEDULER (1)

// Run the frozen main.py at boot, before the REPL.
#define MICROPY_BOARD_FROZEN_MAIN (1)

// The GC heap: the reserved MICROPY_HEAP_SIZE, or less when the command line
// says so (--heap N): one image measures several heap sizes.
#ifndef __ASSEMBLER__
#include <stddef.h>
size_t board_heap_bytes(size_t reserved);
#endif
#define MICROPY_BOARD_HEAP_BYTES(reserved) board_heap_bytes(reserved)

// Idle waits sleep until the next interrupt (SysTick, 1 kHz): no busy loop.
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS) __asm volatile ("wfi")

