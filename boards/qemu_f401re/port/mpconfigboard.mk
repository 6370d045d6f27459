# MicroPython qemu port, board F401RE_EMU: QEMU's netduinoplus2 machine
# (STM32F405, Cortex-M4) linked with the NUCLEO-F401RE's memory (512 KiB
# flash, 96 KiB RAM). Copied into ports/qemu/boards/F401RE_EMU by
# boards/qemu_f401re/build.sh.
QEMU_ARCH = arm
QEMU_MACHINE = netduinoplus2

CFLAGS += -mthumb -mcpu=cortex-m4 -mfloat-abi=soft
CFLAGS += -DQEMU_SOC_STM32
CFLAGS += -DMICROPY_HW_MCU_NAME='"STM32F401RE (emulated Cortex-M4)"'
# The board's settings come before the port's (mpconfigport.h keeps them).
CFLAGS += -include $(BOARD_DIR)/board_config.h
# AES for cryptolib (and SHA-256 for hashlib): mbedTLS with a minimal configuration.
CFLAGS += -I$(TOP)/lib/mbedtls/include -DMBEDTLS_CONFIG_FILE='"$(BOARD_DIR)/mbedtls_config.h"'

LDSCRIPT = $(BOARD_DIR)/f401re.ld

SRC_C += $(BOARD_DIR)/board_hal.c $(BOARD_DIR)/modsemihost.c
LIB_SRC_C += lib/mbedtls/library/aes.c lib/mbedtls/library/platform_util.c lib/mbedtls/library/sha256.c
SRC_BOARD_O = shared/runtime/gchelper_native.o shared/runtime/gchelper_thumb2.o

MICROPY_VFS_LFS2 = 1
MICROPY_HEAP_SIZE = 81920
MPY_CROSS_FLAGS += -march=armv7emsp
