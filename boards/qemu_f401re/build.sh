#!/usr/bin/env bash
# Build the meter firmware for the emulated Cortex-M4 (QEMU netduinoplus2 with
# the NUCLEO-F401RE's 512 KiB flash / 96 KiB RAM) into build/mcu/:
#   1. fetch the pinned Debian source packages (sources.txt) with a private apt
#      sources list and state (the system's apt configuration is not touched),
#      check each tarball against its .dsc and the pinned checksum;
#   2. unpack MicroPython, apply patches/*.patch, put mbedTLS's AES into lib/mbedtls,
#      copy port/ into ports/qemu/boards/F401RE_EMU (only files that changed);
#   3. build mpy-cross, then the firmware with manifest.py frozen.
# A second run redoes only what changed (make's own dependencies).
# Usage: boards/qemu_f401re/build.sh [BUILD_DIR]     (MCU_JOBS=N for make -jN)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$(mkdir -p "${1:-$ROOT/build/mcu}" && cd "${1:-$ROOT/build/mcu}" && pwd)"
JOBS="${MCU_JOBS:-2}"
DL="$OUT/dl"
say() { echo "mcu: $*"; }

for tool in arm-none-eabi-gcc make patch; do
  command -v "$tool" >/dev/null || { echo "mcu: $tool not found (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)" >&2; exit 1; }
done

# ---- 1. sources ---------------------------------------------------------------
pins() { grep -v '^#' "$HERE/sources.txt"; }
dsc_of() { echo "$DL/${1}_${2#*:}.dsc"; }
verify() {  # package version sha256 -> the upstream tarball, checked
  local dsc; dsc="$(dsc_of "$1" "$2")"
  [ -f "$dsc" ] || return 1
  local ok=1 name sum
  while read -r sum _size name; do
    [ -n "$name" ] || continue
    [ -f "$DL/$name" ] || return 1
    echo "$sum  $DL/$name" | sha256sum -c --quiet - >/dev/null 2>&1 || { echo "mcu: $name does not match $dsc" >&2; return 2; }
    case "$name" in *.orig.tar.*) [ "$sum" = "$3" ] || { echo "mcu: $name: checksum $sum, pinned $3" >&2; return 2; }; ok=0;; esac
  done < <(awk '/^Checksums-Sha256:/{f=1;next} /^[^ ]/{f=0} f' "$dsc")
  return $ok
}
fetch() {
  local apt="$OUT/apt" suites=""
  mkdir -p "$apt/lists/partial" "$apt/parts" "$apt/cache/archives/partial" "$DL"
  while read -r _p _v suite _s; do suites="$suites $suite"; done < <(pins)
  : > "$apt/sources.list"
  for s in $(echo "$suites" | tr ' ' '\n' | sort -u); do
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main" >> "$apt/sources.list"
  done
  local o=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/parts"
           -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "Debug::NoLocking=1")
  say "fetching the pinned source packages (private apt lists in $apt)"
  apt-get -q "${o[@]}" update >/dev/null
  local specs=()
  while read -r p v _s _h; do specs+=("$p=$v"); done < <(pins)
  (cd "$DL" && apt-get -q "${o[@]}" source --download-only "${specs[@]}" >/dev/null 2>&1) \
    || { echo "mcu: apt-get source ${specs[*]} failed: a pinned version Debian dropped needs bumping in sources.txt" >&2; exit 1; }
}
need_fetch=0
while read -r p v _s h; do verify "$p" "$v" "$h" || need_fetch=1; done < <(pins)
if [ $need_fetch = 1 ]; then
  fetch
  while read -r p v _s h; do verify "$p" "$v" "$h" || { echo "mcu: $p $v: checksums do not verify" >&2; exit 1; }; done < <(pins)
fi

# ---- 2. source tree -----------------------------------------------------------
MP_VER="$(pins | awk '$1=="micropython"{print $2}')"
TLS_VER="$(pins | awk '$1=="mbedtls"{print $2}')"
UP="${MP_VER%%+*}"; UP="${UP#*:}"
SRC="$OUT/src"
MPY="$SRC/micropython-$UP"
STAMP="$SRC/.unpacked-$MP_VER-$TLS_VER-$(cat "$HERE"/patches/*.patch | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  say "unpacking micropython $MP_VER and mbedtls $TLS_VER"
  rm -rf "$SRC" && mkdir -p "$SRC"
  tar -C "$SRC" -xf "$DL"/micropython_*.orig.tar.*
  for p in "$HERE"/patches/*.patch; do patch -s -d "$MPY" -p1 < "$p"; done
  mkdir -p "$SRC/mbedtls" && tar -C "$SRC/mbedtls" --strip-components=1 -xzf "$DL"/mbedtls_*.orig.tar.gz
  rm -rf "$MPY/lib/mbedtls" && mkdir -p "$MPY/lib/mbedtls"
  cp -r "$SRC/mbedtls/include" "$SRC/mbedtls/library" "$MPY/lib/mbedtls/"
  rm -rf "$SRC/mbedtls"
  # The "+ds" repack empties lib/micropython-lib (the manifest needs none of it);
  # the build checks that its README.md exists.
  echo "placeholder: no micropython-lib in this build" > "$MPY/lib/micropython-lib/README.md"
  touch "$STAMP"
fi
BOARD_DIR="$MPY/ports/qemu/boards/F401RE_EMU"
mkdir -p "$BOARD_DIR"
for f in "$HERE"/port/*; do  # copy only what changed: make rebuilds by timestamps
  cmp -s "$f" "$BOARD_DIR/$(basename "$f")" || cp "$f" "$BOARD_DIR/"
done

# ---- 3. build -----------------------------------------------------------------
# make tracks sources, not flags: a changed board configuration rebuilds the firmware.
CONF="$(cat "$HERE"/port/*.mk "$HERE"/port/*.h "$HERE"/patches/*.patch | sha256sum | cut -c1-16)"
if [ "$(cat "$OUT/fw/.config" 2>/dev/null)" != "$CONF" ]; then
  rm -rf "$OUT/fw" && mkdir -p "$OUT/fw" && echo "$CONF" > "$OUT/fw/.config"
fi
# Reproducible: the version from the pinned source, not from a git repository
# around the build directory; the build date from the source's own timestamp.
export MICROPY_GIT_TAG="v$UP" MICROPY_GIT_HASH="debian-$MP_VER"
SOURCE_DATE_EPOCH="$(stat -c %Y "$MPY/py/mpconfig.h")"
export SOURCE_DATE_EPOCH
make -s -C "$MPY/mpy-cross" -j"$JOBS" BUILD="$OUT/mpy-cross" >/dev/null
make -s -C "$MPY/ports/qemu" -j"$JOBS" BOARD=F401RE_EMU BUILD="$OUT/fw" \
  MICROPY_MPYCROSS="$OUT/mpy-cross/mpy-cross" MICROPY_MPYCROSS_DEPENDENCY="$OUT/mpy-cross/mpy-cross" \
  FROZEN_MANIFEST="$HERE/manifest.py" PROJECT_ROOT="$ROOT"
arm-none-eabi-size "$OUT/fw/firmware.elf" | tail -1 | awk '{printf "mcu: %s: text %d B, data %d B, bss %d B\n", "'"$OUT/fw/firmware.elf"'", $1, $2, $3}'
