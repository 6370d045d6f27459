// `semihost`: the host's files, clock and command line for the F401RE_EMU
// board (ARM semihosting under QEMU -semihosting). The board keeps its flash
// chip and its RTC in host files through it, as an external NOR flash and a
// battery-backed RTC would keep them across power cuts.
#include "py/runtime.h"
#include "py/mperrno.h"
#include "semihost.h"

static mp_obj_t semihost_cmdline(void) {
    return mp_obj_new_str_from_cstr(semihost_args());
}
static MP_DEFINE_CONST_FUN_OBJ_0(semihost_cmdline_obj, semihost_cmdline);

// time() -> seconds since 1970 (the host's clock)
static mp_obj_t semihost_time(void) {
    return mp_obj_new_int_from_uint(semihost_call(SH_TIME, NULL));
}
static MP_DEFINE_CONST_FUN_OBJ_0(semihost_time_obj, semihost_time);

// open(path, mode) -> handle; mode as ARM semihosting numbers it (0 "r", 1 "rb",
// 3 "r+b", 5 "wb", 7 "w+b"...); OSError when the host refuses.
static mp_obj_t semihost_open(mp_obj_t path_in, mp_obj_t mode_in) {
    size_t len;
    const char *path = mp_obj_str_get_data(path_in, &len);
    struct {
        const char *name;
        uint32_t mode;
        uint32_t len;
    } a = { path, mp_obj_get_int(mode_in), len };
    int32_t h = semihost_call(SH_OPEN, &a);
    if (h < 0) {
        mp_raise_OSError(MP_ENOENT);
    }
    return MP_OBJ_NEW_SMALL_INT(h);
}
static MP_DEFINE_CONST_FUN_OBJ_2(semihost_open_obj, semihost_open);

static mp_obj_t semihost_close(mp_obj_t h_in) {
    uint32_t a = mp_obj_get_int(h_in);
    semihost_call(SH_CLOSE, &a);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(semihost_close_obj, semihost_close);

// readinto(handle, pos, buf) -> bytes read
static mp_obj_t semihost_readinto(mp_obj_t h_in, mp_obj_t pos_in, mp_obj_t buf_in) {
    mp_buffer_info_t bi;
    mp_get_buffer_raise(buf_in, &bi, MP_BUFFER_WRITE);
    uint32_t s[3] = { mp_obj_get_int(h_in), mp_obj_get_int(pos_in), 0 };
    if (semihost_call(SH_SEEK, s) != 0) {
        mp_raise_OSError(MP_EIO);
    }
    s[1] = (uint32_t)bi.buf;
    s[2] = bi.len;
    uint32_t left = semihost_call(SH_READ, s);
    return MP_OBJ_NEW_SMALL_INT(bi.len - left);
}
static MP_DEFINE_CONST_FUN_OBJ_3(semihost_readinto_obj, semihost_readinto);

// write(handle, pos, buf): all of buf at pos, else OSError
static mp_obj_t semihost_write(mp_obj_t h_in, mp_obj_t pos_in, mp_obj_t buf_in) {
    mp_buffer_info_t bi;
    mp_get_buffer_raise(buf_in, &bi, MP_BUFFER_READ);
    uint32_t s[3] = { mp_obj_get_int(h_in), mp_obj_get_int(pos_in), 0 };
    if (semihost_call(SH_SEEK, s) != 0) {
        mp_raise_OSError(MP_EIO);
    }
    s[1] = (uint32_t)bi.buf;
    s[2] = bi.len;
    if (semihost_call(SH_WRITE, s) != 0) {
        mp_raise_OSError(MP_EIO);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(semihost_write_obj, semihost_write);

static mp_obj_t semihost_flen(mp_obj_t h_in) {
    uint32_t a = mp_obj_get_int(h_in);
    return mp_obj_new_int(semihost_call(SH_FLEN, &a));
}
static MP_DEFINE_CONST_FUN_OBJ_1(semihost_flen_obj, semihost_flen);

static const mp_rom_map_elem_t semihost_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_semihost) },
    { MP_ROM_QSTR(MP_QSTR_cmdline), MP_ROM_PTR(&semihost_cmdline_obj) },
    { MP_ROM_QSTR(MP_QSTR_time), MP_ROM_PTR(&semihost_time_obj) },
    { MP_ROM_QSTR(MP_QSTR_open), MP_ROM_PTR(&semihost_open_obj) },
    { MP_ROM_QSTR(MP_QSTR_close), MP_ROM_PTR(&semihost_close_obj) },
    { MP_ROM_QSTR(MP_QSTR_readinto), MP_ROM_PTR(&semihost_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR_write), MP_ROM_PTR(&semihost_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_flen), MP_ROM_PTR(&semihost_flen_obj) },
};
static MP_DEFINE_CONST_DICT(semihost_globals, semihost_globals_table);

const mp_obj_module_t semihost_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&semihost_globals,
};

MP_REGISTER_MODULE(MP_QSTR_semihost, semihost_module);
