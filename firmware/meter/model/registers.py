# The register table: the one place to add a register.
#
# The official identifiers of CLC/TS 50568-8 clause 10 are not public; only
# 0x003F (status word, 8 bytes) is. Every other identifier here is the
# project's own map (docs/data-model.md, generated from this table and checked
# against it by a test), kept in this one table so the official map can be
# loaded in its place. The high byte groups a clause-10 area (0x01 daily
# energies, 0x02 load profiles, ... 0x0D display management).
#
# Row: (id, name, size, encoding, unit, scaler, read access, write access,
# persistent, owner). Values travel big-endian (project choice, like the
# identifiers); a value is the number times 10**scaler in the unit.
#
# The owner answers for the register (meter/model/engine.py, the owners in
# docs/data-model.md): its value, the writes and their checks. "model": the
# data model keeps the value. Adding a register is its row here; a computed
# value is an arm of the owner's reg_get, a checked or followed write one of
# its reg_check or written.
#
# ENC_STRUCT values and ENC_TABLE records have a layout in LAYOUTS: a struct
# format (what the firmware packs) and the field names with their units (what
# the host tools show). An ENC_TABLE row's size is its record size; READTAB
# reads its records, READ gives the newest one.
import struct

from meter.compat import const

# encodings
ENC_UINT = const(0)  # unsigned integer, big-endian
ENC_ASCII = const(1)  # text, zero padded
ENC_BYTES = const(2)  # opaque bytes, shown as hex
ENC_BITS = const(3)  # bit field, shown as hex
ENC_TIME = const(4)  # seconds since 1970-01-01 UTC, unsigned
ENC_INT = const(5)  # signed integer, two's complement, big-endian
ENC_STRUCT = const(6)  # fields packed by LAYOUTS[id]
ENC_TABLE = const(7)  # records packed by LAYOUTS[id], CAPACITY[id] of them

# access: who may read or write a register (issue of the security layer)
ACC_NONE = const(0)  # never
ACC_PLAIN = const(1)  # plain services suffice
ACC_READ_KEY = const(2)  # authenticated with the read key K2 (or K1)
ACC_WRITE_KEY = const(3)  # authenticated with the write key K1

# row fields
R_ID = const(0)
R_NAME = const(1)
R_SIZE = const(2)
R_ENC = const(3)
R_UNIT = const(4)
R_SCALER = const(5)
R_READ = const(6)
R_WRITE = const(7)
R_PERSIST = const(8)
R_OWNER = const(9)

# internal parameters
METER_CONSTANT = const(0x0001)
NOMINAL_VOLTAGE = const(0x0002)
REFERENCE_CURRENT = const(0x0003)
MAXIMUM_CURRENT = const(0x0004)
PHASES = const(0x0005)
PERSIST_INTERVAL = const(0x0006)
POWER_UPS = const(0x0007)
FLASH_WRITES = const(0x0008)
OPERATING_TIME = const(0x0009)
# identification, software, hardware and security
SERIAL = const(0x0010)
ACA = const(0x0011)
FIRMWARE_ID = const(0x0012)
POINT_LABEL = const(0x0013)
SECURITY_COUNTERS = const(0x0014)
LMON = const(0x0015)
MANUFACTURER = const(0x0016)
METER_MODEL = const(0x0017)
MANUFACTURE_YEAR = const(0x0018)
HARDWARE_ID = const(0x0019)
MAP_VERSION = const(0x001A)
SECURITY_STATE = const(0x001B)
DIAGNOSTICS = const(0x001C)
# temporal information
CLOCK = const(0x0020)
LOCAL_TIME = const(0x0021)
DST_RULES = const(0x0022)
LAST_CLOCK_CHANGE = const(0x0023)
SYNC_TOLERANCE = const(0x0024)
# total energies, status words
ENERGY_IMPORT = const(0x0030)
ENERGY_EXPORT = const(0x0031)
ENERGY_IMPORT_T1 = const(0x0032)  # .. T4 = 0x0035
ENERGY_EXPORT_T1 = const(0x0036)  # .. T4 = 0x0039
REACTIVE_IMPORT = const(0x003A)
REACTIVE_EXPORT = const(0x003B)
STATUS_WORD = const(0x003F)
EXT_STATUS = const(0x0040)
# daily energies
DAILY_ENERGIES = const(0x0100)
ENERGY_TODAY_IMPORT = const(0x0101)
ENERGY_TODAY_EXPORT = const(0x0102)
# load profile
LOAD_PROFILE = const(0x0200)
PROFILE_PERIOD = const(0x0201)
PROFILE_ENTRIES = const(0x0202)
PROFILE_LAST = const(0x0203)
# communication keys: no register holds them; they change by the key-change
# procedure (meter/app/keychange.py)
KEY_CHANGES = const(0x0302)
# billing
BILLING_SETTINGS = const(0x0400)
BILLING_COUNTER = const(0x0401)
BILLING_LAST = const(0x0402)
BILLING_DATA = const(0x0410)
VIRTUAL_BILLING = const(0x0420)
MAX_DEMAND = const(0x0430)
MAX_DEMAND_T1 = const(0x0431)  # .. T4 = 0x0434
DEMAND_PERIOD = const(0x0435)
DEMAND_LAST = const(0x0436)
# contracts and tariffs
CONTRACT_1 = const(0x0500)
CONTRACT_2 = const(0x0501)
DAY_PROFILES_1 = const(0x0510)
WEEK_PROGRAMS_1 = const(0x0511)
DAY_PROFILES_2 = const(0x0512)
WEEK_PROGRAMS_2 = const(0x0513)
CURRENT_BAND = const(0x0514)
SEASONS_1 = const(0x0520)
SEASONS_2 = const(0x0521)
CURRENT_SEASON = const(0x0522)
HOLIDAYS = const(0x0530)
# load modulation, cut-off device
LOAD_MODULATION = const(0x0600)
POWER_LIMIT = const(0x0601)
OVER_LIMIT_TIME = const(0x0602)
LM_TRIPS = const(0x0603)
CUTOFF_STATE = const(0x0610)
CUTOFF_OPERATIONS = const(0x0611)
# voltage quality
INTERRUPTION_SETTINGS = const(0x0700)
SHORT_INTERRUPTIONS = const(0x0701)
LONG_INTERRUPTIONS = const(0x0702)
LONG_INTERRUPTION_TIME = const(0x0703)
INTERRUPTION_LOG = const(0x0704)
VARIATION_SETTINGS = const(0x0710)
UNDERVOLTAGES = const(0x0711)
OVERVOLTAGES = const(0x0712)
VARIATION_LOG = const(0x0713)
# control, reading mode
CONTROL_FLAGS = const(0x0800)
READING_MODE = const(0x0810)
CUSTOM_TABLE_1 = const(0x0811)  # .. 4 = 0x0814
# measurands
VOLTAGE_L1 = const(0x0900)  # .. L3 = 0x0902
CURRENT_L1 = const(0x0903)  # .. L3 = 0x0905
ACTIVE_POWER = const(0x0906)
REACTIVE_POWER = const(0x0907)
POWER_FACTOR = const(0x0908)
FREQUENCY = const(0x0909)
SYNC_MEASURANDS = const(0x0910)
MEASURAND_PROFILE = const(0x0920)
MEASURAND_PERIOD = const(0x0921)
# events
EVENT_LOG = const(0x0A00)
EVENT_COUNT = const(0x0A01)
SPONT_ACK = const(0x0A02)
EVENT_MASK = const(0x0A10)
SPONT_MASK = const(0x0A11)
# download
DOWNLOAD_SETTINGS = const(0x0C00)
DOWNLOAD_STATE = const(0x0C01)
DOWNLOAD_VERSIONS = const(0x0C02)
DOWNLOAD_FLOOR = const(0x0C03)  # the version floor (meter/slots.py): only raised
# display management (layouts: docs/data-model.md, meter/display/manager.py)
DISPLAY_MODE = const(0x0D00)
DISPLAY_SCROLL = const(0x0D01)
DISPLAY_ALTERNATE = const(0x0D02)
DISPLAY_TIMING = const(0x0D03)
DISPLAY_MESSAGE = const(0x0D10)
DISPLAY_MESSAGE_STATE = const(0x0D11)
DISPLAY_SPECIAL = const(0x0D12)
DISPLAY_SPECIAL_STATE = const(0x0D13)

_P = const(1)  # ACC_PLAIN
_RK = const(2)  # ACC_READ_KEY
_WK = const(3)  # ACC_WRITE_KEY
_NO = const(0)  # ACC_NONE

TABLE = (
    # internal parameters
    (METER_CONSTANT, "meter constant", 2, ENC_UINT, "imp/kWh", 0, _P, _NO, False, "model"),
    (NOMINAL_VOLTAGE, "nominal voltage", 2, ENC_UINT, "V", -1, _P, _NO, False, "model"),
    (REFERENCE_CURRENT, "reference current", 2, ENC_UINT, "A", -1, _P, _NO, False, "model"),
    (MAXIMUM_CURRENT, "maximum current", 2, ENC_UINT, "A", -1, _P, _NO, False, "model"),
    (PHASES, "number of phases", 1, ENC_UINT, "", 0, _P, _NO, False, "model"),
    (PERSIST_INTERVAL, "energy persistence interval", 2, ENC_UINT, "s", 0, _P, _NO, False, "energy"),
    (POWER_UPS, "power-up counter", 2, ENC_UINT, "", 0, _P, _NO, True, "meter"),
    (FLASH_WRITES, "flash record writes", 4, ENC_UINT, "", 0, _P, _NO, False, "meter"),
    (OPERATING_TIME, "operating time", 4, ENC_UINT, "s", 0, _P, _NO, True, "energy"),
    # identification, software, hardware and security
    (STATUS_WORD, "status word", 8, ENC_BITS, "", 0, ACC_PLAIN, ACC_NONE, False, "alarms"),
    (SERIAL, "meter serial number", 16, ENC_ASCII, "", 0, ACC_PLAIN, ACC_NONE, True, "model"),
    (ACA, "absolute communication address", 6, ENC_BYTES, "", 0, ACC_PLAIN, ACC_NONE, True, "model"),
    (FIRMWARE_ID, "firmware identification", 48, ENC_ASCII, "", 0, ACC_PLAIN, ACC_NONE, False, "model"),
    (POINT_LABEL, "metering point label", 16, ENC_ASCII, "", 0, ACC_PLAIN, ACC_PLAIN, True, "model"),
    (SECURITY_COUNTERS, "security counters", 8, ENC_BYTES, "", 0, ACC_READ_KEY, ACC_NONE, False, "security"),
    (LMON, "last message order number", 8, ENC_UINT, "", 0, ACC_READ_KEY, ACC_NONE, False, "security"),
    (MANUFACTURER, "manufacturer", 4, ENC_ASCII, "", 0, _P, _NO, False, "model"),
    (METER_MODEL, "meter model", 16, ENC_ASCII, "", 0, _P, _NO, False, "model"),
    (MANUFACTURE_YEAR, "year of manufacture", 2, ENC_UINT, "", 0, _P, _NO, False, "model"),
    (HARDWARE_ID, "hardware identification", 16, ENC_ASCII, "", 0, _P, _NO, False, "model"),
    (MAP_VERSION, "register map version", 2, ENC_UINT, "", 0, _P, _NO, False, "model"),
    (SECURITY_STATE, "security state", 1, ENC_BITS, "", 0, _P, _NO, False, "security"),
    (DIAGNOSTICS, "firmware diagnostics", 8, ENC_STRUCT, "", 0, _P, _NO, False, "node"),
    # temporal information
    (CLOCK, "clock", 4, ENC_TIME, "s", 0, ACC_PLAIN, ACC_WRITE_KEY, False, "clock"),
    (LOCAL_TIME, "local time", 9, ENC_STRUCT, "", 0, _P, _NO, False, "clock"),
    (DST_RULES, "DST rules", 11, ENC_STRUCT, "", 0, _P, _WK, True, "clock"),
    (LAST_CLOCK_CHANGE, "last clock change", 9, ENC_STRUCT, "", 0, _P, _NO, True, "clock"),
    (SYNC_TOLERANCE, "clock synchronisation tolerance", 2, ENC_UINT, "s", 0, _P, _WK, True, "clock"),
    # total energies
    (ENERGY_IMPORT, "active energy import total", 4, ENC_UINT, "Wh", 0, ACC_PLAIN, ACC_NONE, True, "energy"),
    (ENERGY_EXPORT, "active energy export total", 4, ENC_UINT, "Wh", 0, ACC_PLAIN, ACC_NONE, True, "energy"),
    (ENERGY_IMPORT_T1, "active energy import T1", 4, ENC_UINT, "Wh", 0, _P, _NO, True, "energy"),
    (ENERGY_IMPORT_T1 + 1, "active energy import T2", 4, ENC_UINT, "Wh", 0, _P, _NO, True, "energy"),
    (ENERGY_IMPORT_T1 + 2, "active energy import T3", 4, ENC_UINT, "Wh", 0, _P, _NO, True, "energy"),
    (ENERGY_IMPORT_T1 + 3, "active energy import T4", 4, ENC_UINT, "Wh", 0, _P, _NO, True, "energy"),
    (ENERGY_EXPORT_T1, "active energy export T1", 4, ENC_UINT, "Wh", 0, _P, _NO, True, "energy"),
    (ENERGY_EXPORT_T1 + 1, "active energy export T2", 4, ENC_UINT, "Wh", 0, _P, _NO, True, "energy"),
    (ENERGY_EXPORT_T1 + 2, "active energy export T3", 4, ENC_UINT, "Wh", 0, _P, _NO, True, "energy"),
    (ENERGY_EXPORT_T1 + 3, "active energy export T4", 4, ENC_UINT, "Wh", 0, _P, _NO, True, "energy"),
    (REACTIVE_IMPORT, "reactive energy import total", 4, ENC_UINT, "varh", 0, _P, _NO, True, "energy"),
    (REACTIVE_EXPORT, "reactive energy export total", 4, ENC_UINT, "varh", 0, _P, _NO, True, "energy"),
    # status words
    (EXT_STATUS, "extended status word", 8, ENC_BITS, "", 0, _P, _NO, True, "alarms"),
    # daily energies
    (DAILY_ENERGIES, "daily energies", 28, ENC_TABLE, "", 0, _RK, _NO, True, "energy"),
    (ENERGY_TODAY_IMPORT, "active energy import today", 4, ENC_UINT, "Wh", 0, _P, _NO, False, "energy"),
    (ENERGY_TODAY_EXPORT, "active energy export today", 4, ENC_UINT, "Wh", 0, _P, _NO, False, "energy"),
    # load profile
    (LOAD_PROFILE, "load profile", 13, ENC_TABLE, "", 0, _RK, _NO, True, "profiles"),
    (PROFILE_PERIOD, "load profile period", 2, ENC_UINT, "s", 0, _P, _WK, True, "profiles"),
    (PROFILE_ENTRIES, "load profile entries", 2, ENC_UINT, "", 0, _P, _NO, False, "profiles"),
    (PROFILE_LAST, "last load profile capture", 4, ENC_TIME, "s", 0, _P, _NO, False, "profiles"),
    # communication keys: write-only
    (KEY_CHANGES, "key changes", 2, ENC_UINT, "", 0, _P, _NO, True, "security"),
    # billing
    (BILLING_SETTINGS, "billing period settings", 2, ENC_STRUCT, "", 0, _P, _WK, True, "billing"),
    (BILLING_COUNTER, "billing period counter", 2, ENC_UINT, "", 0, _P, _NO, True, "billing"),
    (BILLING_LAST, "last billing closure", 4, ENC_TIME, "s", 0, _P, _NO, True, "billing"),
    (BILLING_DATA, "billing data", 45, ENC_TABLE, "", 0, _RK, _NO, True, "billing"),
    (VIRTUAL_BILLING, "virtual billing data", 45, ENC_STRUCT, "", 0, _RK, _NO, False, "billing"),
    (MAX_DEMAND, "maximum demand", 8, ENC_STRUCT, "", 0, _P, _NO, True, "billing"),
    (MAX_DEMAND_T1, "maximum demand T1", 8, ENC_STRUCT, "", 0, _P, _NO, True, "billing"),
    (MAX_DEMAND_T1 + 1, "maximum demand T2", 8, ENC_STRUCT, "", 0, _P, _NO, True, "billing"),
    (MAX_DEMAND_T1 + 2, "maximum demand T3", 8, ENC_STRUCT, "", 0, _P, _NO, True, "billing"),
    (MAX_DEMAND_T1 + 3, "maximum demand T4", 8, ENC_STRUCT, "", 0, _P, _NO, True, "billing"),
    (DEMAND_PERIOD, "demand period", 2, ENC_UINT, "s", 0, _P, _WK, True, "billing"),
    (DEMAND_LAST, "last average demand", 4, ENC_UINT, "W", 0, _P, _NO, False, "billing"),
    # supply contracts, weekly and annual tariffs, holidays
    (CONTRACT_1, "supply contract 1", 15, ENC_STRUCT, "", 0, _P, _WK, True, "tariffs"),
    (CONTRACT_2, "supply contract 2", 15, ENC_STRUCT, "", 0, _P, _WK, True, "tariffs"),
    (DAY_PROFILES_1, "contract 1 day profiles", 16, ENC_TABLE, "", 0, _P, _WK, True, "tariffs"),
    (WEEK_PROGRAMS_1, "contract 1 week programs", 7, ENC_TABLE, "", 0, _P, _WK, True, "tariffs"),
    (DAY_PROFILES_2, "contract 2 day profiles", 16, ENC_TABLE, "", 0, _P, _WK, True, "tariffs"),
    (WEEK_PROGRAMS_2, "contract 2 week programs", 7, ENC_TABLE, "", 0, _P, _WK, True, "tariffs"),
    (CURRENT_BAND, "active tariff band", 1, ENC_UINT, "", 0, _P, _NO, False, "tariffs"),
    (SEASONS_1, "contract 1 seasons", 3, ENC_TABLE, "", 0, _P, _WK, True, "tariffs"),
    (SEASONS_2, "contract 2 seasons", 3, ENC_TABLE, "", 0, _P, _WK, True, "tariffs"),
    (CURRENT_SEASON, "active season", 1, ENC_UINT, "", 0, _P, _NO, False, "tariffs"),
    (HOLIDAYS, "public holidays", 4, ENC_TABLE, "", 0, _P, _WK, True, "tariffs"),
    # load modulation, cut-off device
    (LOAD_MODULATION, "load modulation settings", 7, ENC_STRUCT, "", 0, _P, _WK, True, "cutoff"),
    (POWER_LIMIT, "power limit", 4, ENC_UINT, "W", 0, _P, _NO, False, "cutoff"),
    (OVER_LIMIT_TIME, "time above the power limit", 2, ENC_UINT, "s", 0, _P, _NO, False, "cutoff"),
    (LM_TRIPS, "load modulation trips", 2, ENC_UINT, "", 0, _P, _NO, True, "cutoff"),
    (CUTOFF_STATE, "cut-off device state", 6, ENC_STRUCT, "", 0, _P, _NO, True, "cutoff"),
    (CUTOFF_OPERATIONS, "cut-off device operations", 2, ENC_UINT, "", 0, _P, _NO, True, "cutoff"),
    # voltage interruptions and variations
    (INTERRUPTION_SETTINGS, "interruption settings", 3, ENC_STRUCT, "", 0, _P, _WK, True, "quality"),
    (SHORT_INTERRUPTIONS, "short interruptions", 2, ENC_UINT, "", 0, _P, _NO, True, "quality"),
    (LONG_INTERRUPTIONS, "long interruptions", 2, ENC_UINT, "", 0, _P, _NO, True, "quality"),
    (LONG_INTERRUPTION_TIME, "long interruptions duration", 4, ENC_UINT, "s", 0, _P, _NO, True, "quality"),
    (INTERRUPTION_LOG, "interruption log", 9, ENC_TABLE, "", 0, _P, _NO, True, "quality"),
    (VARIATION_SETTINGS, "voltage variation settings", 4, ENC_STRUCT, "", 0, _P, _WK, True, "quality"),
    (UNDERVOLTAGES, "undervoltages", 2, ENC_UINT, "", 0, _P, _NO, True, "quality"),
    (OVERVOLTAGES, "overvoltages", 2, ENC_UINT, "", 0, _P, _NO, True, "quality"),
    (VARIATION_LOG, "voltage variation log", 12, ENC_TABLE, "", 0, _P, _NO, True, "quality"),
    # control information, reading mode management
    (CONTROL_FLAGS, "control flags", 2, ENC_BITS, "", 0, _P, _WK, True, "meter"),
    (READING_MODE, "reading mode", 1, ENC_UINT, "", 0, _P, _WK, True, "meter"),
    (CUSTOM_TABLE_1, "custom table 1", 32, ENC_BYTES, "", 0, _P, _WK, True, "meter"),
    (CUSTOM_TABLE_1 + 1, "custom table 2", 32, ENC_BYTES, "", 0, _P, _WK, True, "meter"),
    (CUSTOM_TABLE_1 + 2, "custom table 3", 32, ENC_BYTES, "", 0, _P, _WK, True, "meter"),
    (CUSTOM_TABLE_1 + 3, "custom table 4", 32, ENC_BYTES, "", 0, _P, _WK, True, "meter"),
    # measurands
    (VOLTAGE_L1, "voltage L1", 2, ENC_UINT, "V", -1, _P, _NO, False, "measurands"),
    (VOLTAGE_L1 + 1, "voltage L2", 2, ENC_UINT, "V", -1, _P, _NO, False, "measurands"),
    (VOLTAGE_L1 + 2, "voltage L3", 2, ENC_UINT, "V", -1, _P, _NO, False, "measurands"),
    (CURRENT_L1, "current L1", 2, ENC_UINT, "A", -2, _P, _NO, False, "measurands"),
    (CURRENT_L1 + 1, "current L2", 2, ENC_UINT, "A", -2, _P, _NO, False, "measurands"),
    (CURRENT_L1 + 2, "current L3", 2, ENC_UINT, "A", -2, _P, _NO, False, "measurands"),
    (ACTIVE_POWER, "active power", 4, ENC_INT, "W", 0, _P, _NO, False, "measurands"),
    (REACTIVE_POWER, "reactive power", 4, ENC_INT, "var", 0, _P, _NO, False, "measurands"),
    (POWER_FACTOR, "power factor", 2, ENC_INT, "", -3, _P, _NO, False, "measurands"),
    (FREQUENCY, "frequency", 2, ENC_UINT, "Hz", -2, _P, _NO, False, "measurands"),
    (SYNC_MEASURANDS, "synchronized measurands", 24, ENC_STRUCT, "", 0, _P, _NO, False, "measurands"),
    (MEASURAND_PROFILE, "measurand profile", 16, ENC_TABLE, "", 0, _RK, _NO, True, "profiles"),
    (MEASURAND_PERIOD, "measurand profile period", 2, ENC_UINT, "s", 0, _P, _WK, True, "profiles"),
    # events
    (EVENT_LOG, "event log", 9, ENC_TABLE, "", 0, _P, _NO, True, "events"),
    (EVENT_COUNT, "events logged", 4, ENC_UINT, "", 0, _P, _NO, False, "events"),
    (SPONT_ACK, "spontaneous data acknowledged", 4, ENC_UINT, "", 0, _P, _NO, True, "events"),
    (EVENT_MASK, "logged events", 4, ENC_BITS, "", 0, _P, _WK, True, "events"),
    (SPONT_MASK, "spontaneous events", 4, ENC_BITS, "", 0, _P, _WK, True, "events"),
    # download parameters
    (DOWNLOAD_SETTINGS, "download settings", 6, ENC_STRUCT, "", 0, _P, _WK, True, "download"),
    (DOWNLOAD_STATE, "download state", 11, ENC_STRUCT, "", 0, _P, _NO, False, "download"),
    (DOWNLOAD_VERSIONS, "firmware slots", 14, ENC_STRUCT, "", 0, _P, _NO, False, "download"),
    (DOWNLOAD_FLOOR, "firmware version floor", 4, ENC_UINT, "", 0, _P, _NO, False, "download"),
    # display management
    (DISPLAY_MODE, "display mode", 1, ENC_UINT, "", 0, ACC_PLAIN, ACC_WRITE_KEY, False, "display"),
    (DISPLAY_SCROLL, "display scroll list", 16, ENC_BYTES, "", 0, ACC_PLAIN, ACC_WRITE_KEY, True, "display"),
    (DISPLAY_ALTERNATE, "display alternate list", 16, ENC_BYTES, "", 0, ACC_PLAIN, ACC_WRITE_KEY, True, "display"),
    (DISPLAY_TIMING, "display timing", 4, ENC_BYTES, "", 0, ACC_PLAIN, ACC_WRITE_KEY, True, "display"),
    (DISPLAY_MESSAGE, "utility message", 35, ENC_BYTES, "", 0, ACC_PLAIN, ACC_WRITE_KEY, True, "display"),
    (DISPLAY_MESSAGE_STATE, "utility message state", 5, ENC_BYTES, "", 0, ACC_PLAIN, ACC_NONE, True, "display"),
    (DISPLAY_SPECIAL, "special message", 3, ENC_BYTES, "", 0, ACC_PLAIN, ACC_WRITE_KEY, True, "display"),
    (DISPLAY_SPECIAL_STATE, "special message state", 5, ENC_BYTES, "", 0, ACC_PLAIN, ACC_NONE, True, "display"),
)

BY_ID = {row[R_ID]: row for row in TABLE}

# Layouts of ENC_STRUCT values and ENC_TABLE records: (struct format, fields).
# Fields: "name:unit:scaler" separated by commas; "name*N" repeats a field N
# times; units starting with "=" are shown specially by the host tools
# (=time: seconds since 1970, =bits: hex, =event: event code, =point: tariff
# switch point, minute of the day | band << 12, FFFF unused).
_BILL = ">IBIIIIIIIIII"
_BILL_FIELDS = ("time:=time,reason,import:Wh,import T1:Wh,import T2:Wh,import T3:Wh,import T4:Wh,"
                "export:Wh,reactive import:varh,reactive export:varh,maximum demand:W,maximum demand time:=time")
_DEMAND = (">II", "demand:W,time:=time")
_CONTRACT = (">IIHBI", "contract id,power limit:W,tariff program,holiday day profile,activation:=time")
LAYOUTS = {
    DIAGNOSTICS: (">IHH", "frames faulted,task restarts,watchdog resets"),
    LOCAL_TIME: (">HBBBBBBB", "year,month,day,hour,minute,second,weekday,dst"),
    DST_RULES: (">hBBBBBBBBB", "standard offset:min,dst shift:min,start month,start week,start weekday,"
                               "start hour UTC,end month,end week,end weekday,end hour UTC"),
    LAST_CLOCK_CHANGE: (">IIB", "before:=time,after:=time,kind"),
    DAILY_ENERGIES: (">IIIIIII", "time:=time,import:Wh,export:Wh,import T1:Wh,import T2:Wh,import T3:Wh,"
                                 "import T4:Wh"),
    LOAD_PROFILE: (">IBHHHH", "time:=time,status:=bits,import:Wh,export:Wh,reactive import:varh,"
                              "reactive export:varh"),
    BILLING_SETTINGS: (">BB", "day of month,hour"),
    BILLING_DATA: (_BILL, _BILL_FIELDS),
    VIRTUAL_BILLING: (_BILL, _BILL_FIELDS),
    MAX_DEMAND: _DEMAND,
    MAX_DEMAND_T1: _DEMAND,
    MAX_DEMAND_T1 + 1: _DEMAND,
    MAX_DEMAND_T1 + 2: _DEMAND,
    MAX_DEMAND_T1 + 3: _DEMAND,
    CONTRACT_1: _CONTRACT,
    CONTRACT_2: _CONTRACT,
    DAY_PROFILES_1: (">8H", "switch point*8:=point"),
    DAY_PROFILES_2: (">8H", "switch point*8:=point"),
    WEEK_PROGRAMS_1: (">7B", "monday,tuesday,wednesday,thursday,friday,saturday,sunday"),
    WEEK_PROGRAMS_2: (">7B", "monday,tuesday,wednesday,thursday,friday,saturday,sunday"),
    SEASONS_1: (">BBB", "start month,start day,week program"),
    SEASONS_2: (">BBB", "start month,start day,week program"),
    HOLIDAYS: (">HBB", "year,month,day"),
    LOAD_MODULATION: (">BHBHB", "tolerance:%,delay:s,reconnection mode,reconnection delay:s,"
                                "automatic reconnections"),
    CUTOFF_STATE: (">BBI", "state,reason,since:=time"),
    INTERRUPTION_SETTINGS: (">BH", "threshold:%,long interruption:s"),
    INTERRUPTION_LOG: (">IIB", "start:=time,duration:s,phases:=bits"),
    VARIATION_SETTINGS: (">BBH", "lower limit:%,upper limit:%,minimum duration:s"),
    VARIATION_LOG: (">IIBBH", "start:=time,duration:s,phase,kind,extreme voltage:V:-1"),
    SYNC_MEASURANDS: (">IHHHHHHii", "time:=time,voltage L1:V:-1,voltage L2:V:-1,voltage L3:V:-1,"
                                    "current L1:A:-2,current L2:A:-2,current L3:A:-2,active power:W,"
                                    "reactive power:var"),
    MEASURAND_PROFILE: (">IHHHHHH", "time:=time,voltage L1:V:-1,voltage L2:V:-1,voltage L3:V:-1,"
                                    "minimum voltage:V:-1,maximum voltage:V:-1,maximum current:A:-2"),
    EVENT_LOG: (">IBI", "time:=time,event:=event,data"),
    DOWNLOAD_SETTINGS: (">HI", "health window:s,activation time:=time"),  # meter/app/download.py
    DOWNLOAD_STATE: (">BBHHBI", "state,slot,blocks received,blocks,last failure,image id"),
    DOWNLOAD_VERSIONS: (">BBIII", "active slot,previous slot,built-in version,slot A version,slot B version"),
}

# Records an ENC_TABLE register holds. Logs and profiles are rings on flash:
# (pages, records per page, records written together; 0 = each at once), see
# meter/model/ring.py; the others are fixed arrays of `capacity` records.
CAPACITY = {
    DAILY_ENERGIES: 64, LOAD_PROFILE: 3060, BILLING_DATA: 14, DAY_PROFILES_1: 8, WEEK_PROGRAMS_1: 4,
    DAY_PROFILES_2: 8, WEEK_PROGRAMS_2: 4, SEASONS_1: 4, SEASONS_2: 4, HOLIDAYS: 24, INTERRUPTION_LOG: 52,
    VARIATION_LOG: 40, MEASURAND_PROFILE: 1008, EVENT_LOG: 1326,
}
RINGS = {
    DAILY_ENERGIES: (16, 4, 0), LOAD_PROFILE: (10, 306, 9), BILLING_DATA: (7, 2, 0), INTERRUPTION_LOG: (4, 13, 0),
    VARIATION_LOG: (4, 10, 0), MEASURAND_PROFILE: (4, 252, 7), EVENT_LOG: (3, 442, 13),
}


def _points(*pts):
    # (hour, minute, band) ... -> a day profile record (8 switch points)
    out = bytearray(b"\xff" * 16)
    for i in range(len(pts)):
        h, m, band = pts[i]
        struct.pack_into(">H", out, 2 * i, (h * 60 + m) | (band << 12))
    return bytes(out)


# Values of the settings and tariff tables at the factory and after RESETTAB.
# Default tariff program: T1 weekdays 08-19, T2 weekdays 07-08 and 19-23 and
# Saturdays 07-23, T3 nights, Sundays and holidays (a common three-band scheme).
DEFAULTS = {
    METER_CONSTANT: 1000,
    NOMINAL_VOLTAGE: 2300,
    REFERENCE_CURRENT: 50,
    MAXIMUM_CURRENT: 600,
    PHASES: 3,
    MANUFACTURER: "SMTP",
    METER_MODEL: "smitp-meter 3ph",
    MANUFACTURE_YEAR: 2026,
    MAP_VERSION: 2,
    DST_RULES: struct.pack(">hBBBBBBBBB", 60, 60, 3, 5, 7, 1, 10, 5, 7, 1),  # EU rules, CET
    SYNC_TOLERANCE: 30,
    PROFILE_PERIOD: 900,
    BILLING_SETTINGS: b"\x01\x00",  # day 1, 00:00 local time
    DEMAND_PERIOD: 900,
    CONTRACT_1: struct.pack(">IIHBI", 1, 6000, 1, 2, 0),
    CONTRACT_2: bytes(15),
    DAY_PROFILES_1: _points((0, 0, 3), (7, 0, 2), (8, 0, 1), (19, 0, 2), (23, 0, 3))
    + _points((0, 0, 3), (7, 0, 2), (23, 0, 3)) + _points((0, 0, 3)) + b"\xff" * 16 * 5,
    WEEK_PROGRAMS_1: b"\x00\x00\x00\x00\x00\x01\x02" + bytes(21),
    SEASONS_1: b"\x01\x01\x00" + bytes(9),
    DAY_PROFILES_2: b"\xff" * 16 * 8,
    WEEK_PROGRAMS_2: bytes(28),
    SEASONS_2: bytes(12),
    HOLIDAYS: b"\x00\x00\x01\x01\x00\x00\x01\x06\x00\x00\x04\x19\x00\x00\x05\x01\x00\x00\x06\x02"
    b"\x00\x00\x08\x0f\x00\x00\x0b\x01\x00\x00\x0c\x08\x00\x00\x0c\x19\x00\x00\x0c\x1a" + bytes(56),
    LOAD_MODULATION: struct.pack(">BHBHB", 10, 120, 1, 60, 3),
    INTERRUPTION_SETTINGS: struct.pack(">BH", 10, 180),
    VARIATION_SETTINGS: struct.pack(">BBH", 90, 110, 1),
    CONTROL_FLAGS: 0x003F,
    MEASURAND_PERIOD: 900,
    EVENT_MASK: 0xFFFFFFFE,
    # power down/up, clock set, cut-off opened/closed, phase interruption, storage fault, keys
    SPONT_MASK: (1 << 1) | (1 << 2) | (1 << 3) | (1 << 7) | (1 << 8) | (1 << 14) | (1 << 17) | (1 << 18),
    DOWNLOAD_SETTINGS: b"\x00\x78\x00\x00\x00\x00",
}

# status word bits (bit 0 = least significant bit of the last byte)
SW_CLOCK_UNSET = const(0)  # the clock has not been set since power-up
SW_STORAGE_FAULT = const(1)  # a write to non-volatile storage failed
SW_MODEM_RESET = const(2)  # the modem reported an unexpected reset since the last read
SW_CUTOFF_OPEN = const(3)  # the cut-off device is open
SW_OVER_LIMIT = const(4)  # power above the contract limit now
SW_VOLTAGE_OUT = const(5)  # a phase voltage outside the variation limits now
SW_PHASE_MISSING = const(6)  # a phase below the interruption threshold now
SW_DST = const(7)  # daylight saving time in effect
SW_SPONT_PENDING = const(8)  # spontaneous data waits for DATASPONT
SW_ALARM = const(9)  # the extended status word has a bit set
SW_CONTRACT_PENDING = const(10)  # contract 2 is scheduled
SW_AUTH_READING = const(11)  # reading mode: authenticated reads only
SW_LM_LOCKED = const(12)  # automatic reconnections used up: only a command closes

# extended status word bits: latched until COMMAND "reset alarms"
XS_POWER_FAIL = const(0)
XS_CLOCK_CHANGED = const(1)
XS_LM_OPENED = const(2)
XS_CMD_OPENED = const(3)
XS_UNDERVOLTAGE = const(4)
XS_OVERVOLTAGE = const(5)
XS_PHASE_INTERRUPTED = const(6)
XS_STORAGE_FAULT = const(7)
XS_LOG_WRAPPED = const(8)
XS_SETTINGS_CHANGED = const(9)
XS_BILLING_COMMAND = const(10)
XS_CONTRACT_SWITCHED = const(11)
XS_EXPORT = const(12)
XS_OVER_LIMIT = const(13)
XS_KEYS_CHANGED = const(14)

# control flags (0x0800)
CF_DST = const(0)  # apply the DST rules
CF_PROFILE = const(1)  # capture the load profile
CF_MEASURAND_PROFILE = const(2)  # capture the measurand profile
CF_BILLING = const(3)  # close the billing period at the programmed time
CF_LOAD_MODULATION = const(4)  # open the cut-off device above the power limit
CF_SPONTANEOUS = const(5)  # queue spontaneous data for DATASPONT
CF_BNODE_PLAIN = const(15)  # serve plain SETIC / WRITETABIC (off: the write key only; docs/security.md)


def lookup(reg_id):
    return BY_ID.get(reg_id)


def allowed(level, grant):
    """May a request with rights `grant` do what needs `level`?"""
    return level != ACC_NONE and grant >= level
