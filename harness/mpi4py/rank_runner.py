# Runs mpi4py's test/main.py in one rank, for the harness's mpi4py:: cases
# (harness/src/mpi4py.rs): the rank's stdout and stderr go to its own
# rankR.log, each test's outcome to rankR.outcomes ("test-id<TAB>outcome"),
# unittest's counts to rankR.summary. Arguments: RUNDIR TESTDIR [main.py's].
# mpi4py.futures' workers run this file again to find __main__'s functions:
# everything is under the __main__ guard, as in test/main.py.
import importlib, os, sys, unittest


def main():
    rundir, testdir, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    rank = os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0"
    log = os.open(os.path.join(rundir, f"rank{rank}.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sys.stdout.flush(); sys.stderr.flush()
    os.dup2(log, 1); os.dup2(log, 2)
    outcomes = open(os.path.join(rundir, f"rank{rank}.outcomes"), "w", buffering=1)

    def record(test, outcome):
        outcomes.write(f"{test.id()}\t{outcome}\n")

    def hook(method, outcome):
        original = getattr(unittest.TextTestResult, method)
        def wrapper(self, test, *rest):
            record(test, outcome)
            return original(self, test, *rest)
        setattr(unittest.TextTestResult, method, wrapper)

    for method, outcome in [("addSuccess", "ok"), ("addFailure", "FAIL"),
                            ("addError", "ERROR"), ("addSkip", "skip"),
                            ("addExpectedFailure", "xfail"),
                            ("addUnexpectedSuccess", "XPASS")]:
        hook(method, outcome)
    original_subtest = unittest.TextTestResult.addSubTest
    def add_subtest(self, test, subtest, err):
        if err is not None:
            record(subtest, "FAIL" if issubclass(err[0], test.failureException) else "ERROR")
        return original_subtest(self, test, subtest, err)
    unittest.TextTestResult.addSubTest = add_subtest

    original_run = unittest.TextTestRunner.run
    def run(self, test):
        result = original_run(self, test)
        with open(os.path.join(rundir, f"rank{rank}.summary"), "w") as f:
            f.write(f"ran={result.testsRun} failures={len(result.failures)}"
                    f" errors={len(result.errors)} skipped={len(result.skipped)}"
                    f" xfail={len(result.expectedFailures)}"
                    f" xpass={len(result.unexpectedSuccesses)}\n")
        return result
    unittest.TextTestRunner.run = run

    sys.dont_write_bytecode = True
    sys.path.insert(0, testdir)
    sys.argv = [os.path.join(testdir, "main.py"), *args]
    importlib.import_module("main").main(module=None)


if __name__ == "__main__":
    main()
