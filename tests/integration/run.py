#!/usr/bin/env python3
"""Run the integration tests (tests/integration/test_*.py) with unittest.

    /usr/bin/python3 tests/integration/run.py [-k PATTERN] [PATTERN]

scripts/test starts the servers and sets BK_* (see helpers.py), then runs this.
PATTERN selects tests as unittest's -k does (a substring of the test id, or a
glob such as "*Runtime*"). The last line is "RESULT passed=N failed=M": errors
count as failed, skips as neither. Exit status 1 if anything failed.
"""
import argparse
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class CountingResult(unittest.TextTestResult):
    """TextTestResult that also counts passes (and failing subtests)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_passed = 0
        self.n_failed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.n_passed += 1

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.n_passed += 1

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.n_failed += 1

    def addError(self, test, err):
        super().addError(test, err)
        self.n_failed += 1

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.n_failed += 1

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.n_failed += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", dest="patterns", action="append", default=[],
                    help="only tests whose id matches (substring or glob); repeatable")
    ap.add_argument("pattern", nargs="*", help="same as -k")
    ap.add_argument("-x", "--failfast", action="store_true", help="stop at the first failure")
    opts = ap.parse_args()
    patterns = opts.patterns + opts.pattern

    sys.path.insert(0, HERE)  # "from helpers import ..." in the tests
    loader = unittest.TestLoader()
    if patterns:
        loader.testNamePatterns = [p if "*" in p else f"*{p}*" for p in patterns]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)

    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, resultclass=CountingResult,
                                     failfast=opts.failfast)
    started = time.monotonic()
    result = runner.run(suite)
    # errors outside a test (setUpClass, module import) reach addError too
    print(f"integration tests took {time.monotonic() - started:.1f}s")
    print(f"RESULT passed={result.n_passed} failed={result.n_failed}", flush=True)
    return 1 if result.n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
