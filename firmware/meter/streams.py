# Waiting on a port's stream with asyncio, shared by the tasks that own the
# modem UART (meter/runtime/firmware.py) and the optical port
# (meter/optical/port.py).
import asyncio


async def read_within(reader, mv, timeout):
    """One wait for "bytes or the port's next timer", whichever comes first:
    the count of bytes read into mv, -1 when the timer came first, 0 or None
    when the port closed. timeout < 0: no timer."""
    if timeout == 0:
        return -1
    if timeout < 0:
        return await reader.readinto(mv)
    try:
        return await asyncio.wait_for_ms(reader.readinto(mv), timeout)
    except asyncio.TimeoutError:
        return -1
