"""Host tools for smitp-meter: concentrator, hand-held unit, simulators and emulated boards."""
