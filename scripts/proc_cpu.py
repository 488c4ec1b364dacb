#!/usr/bin/env python3
"""CPU accounting for make bench, from /proc (utime + stime, all threads).

    proc_cpu.py OUT.json --postmaster PID --pg-db NAME[,NAME] --rabbit PID \
        [--group NAME=PID[,PID...]]...

writes one snapshot: CPU seconds used so far by each group, and by the whole machine.
scripts/bench.sh takes one before and one after each timed step; the difference,
divided by the events of the step, is CPU per event.

Groups:
  postgres      the postmaster, its auxiliary processes (checkpointer, WAL writer,
                autovacuum, ...) and the client backends of the --pg-db databases;
                other databases' backends (other users of a shared server) are left out
  postgres_all  every process of the postmaster's tree, plus what its exited children
                used (cutime + cstime of the postmaster, which reaps them)
  rabbitmq      beam.smp and all its descendants
  NAME          each --group: the listed processes and their descendants
  machine       every core's busy time (/proc/stat), to see what else ran
  others        every other live process (pid: [comm, CPU seconds]), to name it
"""
import argparse
import json
import os
import re
import time

HZ = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """(ppid, utime + stime, cutime + cstime) in seconds, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
    return int(rest[1]), (int(rest[11]) + int(rest[12])) / HZ, (int(rest[13]) + int(rest[14])) / HZ


def title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


# "postgres: [cluster: ]USER DB HOST(PORT) ACTIVITY" or "... USER DB [local] ACTIVITY"
CLIENT = re.compile(r"^postgres: (?:\S+: )?(\S+) (\S+) (\S+\(\d+\)|\[local\])")


def snapshot(args):
    procs = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = stat(int(name))
            if s:
                procs[int(name)] = s
    children = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)

    def tree(roots):
        seen, todo = set(), [r for r in roots if r in procs]
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.add(pid)
                todo.extend(children.get(pid, []))
        return seen

    cpu = lambda pids: sum(procs[p][1] for p in pids)
    groups, counted = {}, set()
    pg_dbs = set(filter(None, args.pg_db.split(",")))
    if args.postmaster:
        everything = tree([args.postmaster])
        mine = set()
        for pid in everything:
            m = CLIENT.match(title(pid)) if pid != args.postmaster else None
            if m is None or m.group(2) in pg_dbs:
                mine.add(pid)
        counted |= everything
        groups["postgres"] = cpu(mine)
        groups["postgres_all"] = cpu(everything) + procs.get(args.postmaster, (0, 0, 0))[2]
    if args.rabbit:
        rabbit = tree([args.rabbit])
        counted |= rabbit
        groups["rabbitmq"] = cpu(rabbit)
    for spec in args.group:
        name, _, pids = spec.partition("=")
        members = tree([int(p) for p in pids.split(",") if p])
        counted |= members
        groups[name] = cpu(members)
    others = {}
    for pid in procs:
        if pid not in counted and pid != os.getpid() and procs[pid][1] > 0:
            try:
                with open(f"/proc/{pid}/comm") as f:
                    others[pid] = [f.read().strip(), procs[pid][1]]
            except OSError:
                pass
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is inside user already)
    busy = sum(fields[i] for i in (0, 1, 2, 5, 6, 7) if i < len(fields)) / HZ
    return {"t": time.monotonic(), "machine": busy, "groups": groups, "others": others}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--postmaster", type=int, default=0)
    p.add_argument("--pg-db", default="")
    p.add_argument("--rabbit", type=int, default=0)
    p.add_argument("--group", action="append", default=[])
    args = p.parse_args()
    with open(args.out, "w") as f:
        json.dump(snapshot(args), f)


if __name__ == "__main__":
    main()
