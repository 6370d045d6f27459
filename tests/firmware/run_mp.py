# Runs every tests/firmware/test_*.py under the interpreter that runs this file
# (the MicroPython unix port in `make test`). Prints one line per failure and a
# closing "N passed, N failed" line; exits 1 on any failure.
import os
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE)
sys.path.insert(0, HERE + "/../../firmware")


def main(selected):
    passed = failed = 0
    for name in sorted(os.listdir(HERE)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        modname = name[:-3]
        if selected and modname not in selected:
            continue
        mod = __import__(modname)
        for attr in sorted(dir(mod)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(mod, attr)
            try:
                fn()
                passed += 1
            except Exception as e:  # report and continue with the next test
                failed += 1
                print("FAIL %s.%s: %s %s" % (modname, attr, type(e).__name__, e))
                sys.print_exception(e) if hasattr(sys, "print_exception") else None
    print("micropython: %d passed, %d failed" % (passed, failed))
    return failed


if __name__ == "__main__":
    sys.exit(1 if main(sys.argv[1:]) else 0)
