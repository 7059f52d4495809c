"""Checks reproduce_test.sh applies to every benchmark it runs with a few rows."""


def check_student_rows(benchmark, floor, failures):
    """Teachers, KD and the default row exist, every task's accuracy is above `floor` and the
    union is above 10% (chance is 5% for 20 classes, 10% for 10) and at most the oracle-routing
    union. Appends what fails to `failures`."""
    rows = {r["name"]: r for r in benchmark["rows"]}
    for name in ("Teachers", "kd", "routed-kd (default)"):
        r = rows.get(name)
        if r is None:
            failures.append(f"no row {name}")
            continue
        if not all(floor < a <= 1 for a in r["task_acc"][0]):
            failures.append(f"{name}: task accuracy {r['task_acc'][0]} not above {floor}")
        # Both are counts over the same images divided in double: 1e-9 only absorbs a rounding.
        if not (0.1 < r["union_acc"][0] <= r["oracle_union_acc"][0] + 1e-9):
            failures.append(f"{name}: union {r['union_acc']} oracle {r['oracle_union_acc']}")
