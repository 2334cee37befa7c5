#!/usr/bin/env python3
"""Snapshot benchmark: peak RSS and time of building, shipping and
installing the snapshot of one large partition, on real `keel` processes.

    bench/snapshot.py --keel $CARGO_TARGET_DIR/release/keel --state-mib 512

A 3-node cluster with one partition (replication factor 3) runs on
loopback; node 3 stays down. Through node 1's admin API the partition is
filled with `--state-mib` state values of 1 MiB (random bytes, so LZ4
cannot shrink them), with `--snapshot-logs` set just above that many
entries. Then:

0. idle: the leader's peak over 3 quiet seconds (with node 3 down its
   replication retries read up to 256 log entries of 1 MiB each time);
1. build: peaks of nodes 1 and 2 are reset (`/proc/<pid>/clear_refs`),
   small writes push the applied index over `--snapshot-logs`, and every
   node builds its snapshot of the whole state; timed from the crossing to
   the snapshot showing in `/cluster`; VmHWM of both nodes read after;
2. transfer and install: the leader's peak is reset and node 3 starts on
   an empty data directory; the leader's log is purged behind its
   snapshot, so node 3 can only catch up by installing it; timed from
   node 3's start until it has applied the snapshot's index; VmHWM of the
   leader (reads and sends) and of node 3 (receives and installs).

Prints the figures as a Markdown table row. Needs ~4x the state in free
disk under --dir (three nodes, plus snapshot files).
"""
import argparse, json, os, random, secrets, shutil, socket, subprocess, sys, tempfile, time
import urllib.request

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)

def reset_peak(pid):
    # Writing 5 resets the peak resident set size (VmHWM) to the current one.
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    return status_kib(pid, "VmRSS")

def mib(kib):
    return kib / 1024

class Node:
    def __init__(self, id, args, peers, ports, secret_file, root):
        self.id, self.ports = id, ports
        self.data = os.path.join(root, f"node-{id}")
        self.log = open(os.path.join(root, f"node-{id}.log"), "ab")
        self.cmd = [args.keel, "--node-id", str(id), "--data-dir", self.data,
                    "--cluster-secret-file", secret_file, "--peers", peers,
                    "--ingress-addr", f"127.0.0.1:{ports[0]}", "--admin-addr", f"127.0.0.1:{ports[1]}",
                    "--node-addr", f"127.0.0.1:{ports[2]}", "--partitions", "1", "--replication-factor", "3",
                    "--snapshot-logs", str(args.snapshot_logs), "--keep-logs", "10"]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=self.log)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def admin(self, path, body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.ports[1]}{path}", data=body,
                                     headers={"content-type": "application/json"} if body else {})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read() or b"null")

    def partition(self):
        """This node's view of partition 0, or None while it does not answer."""
        try:
            return self.admin("/cluster")["partitions"][0]
        except Exception:
            return None

def wait_for(what, check, timeout=600, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    sys.exit(f"timed out waiting for {what}")

def set_state(node, key, value_json):
    body = ('{"object_key": "%s", "new_state": {"v": %s}}' % (key, value_json)).encode()
    node.admin("/services/Bench/state", body)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keel", required=True, help="the keel binary")
    p.add_argument("--state-mib", type=int, default=512)
    p.add_argument("--dir", default=None, help="where the data directories go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the data directories")
    args = p.parse_args()
    # The fill's entries stay below the snapshot threshold; the build starts
    # when small writes push the applied index over it.
    args.snapshot_logs = args.state_mib + 50

    root = tempfile.mkdtemp(prefix="keel-snapbench-", dir=args.dir)
    secret_file = os.path.join(root, "secret")
    with open(secret_file, "w") as f:
        f.write(secrets.token_hex(32))
    ports = {i: (free_port(), free_port(), free_port()) for i in (1, 2, 3)}
    peers = ",".join(f"{i}=127.0.0.1:{ports[i][2]}" for i in (1, 2, 3))
    nodes = {i: Node(i, args, peers, ports[i], secret_file, root) for i in (1, 2, 3)}
    try:
        nodes[1].start()
        nodes[2].start()
        leader_id = wait_for("a leader", lambda: (nodes[1].partition() or {}).get("leader"), interval=0.2)
        leader = nodes[leader_id]
        other = nodes[3 - leader_id]

        value = json.dumps(list(random.Random(7).randbytes(1 << 20)))
        t = time.monotonic()
        for i in range(args.state_mib):
            set_state(leader, f"k{i:06}", value)
        fill_s = time.monotonic() - t
        applied = leader.partition()["applied"]
        print(f"filled {args.state_mib} MiB in {fill_s:.1f} s (applied {applied})", file=sys.stderr)

        # The leader's peak while idle, for comparison: with node 3 down it
        # keeps retrying replication to it, reading log entries each time.
        idle_base = reset_peak(leader.proc.pid)
        time.sleep(3)
        idle_hwm = status_kib(leader.proc.pid, "VmHWM")

        # 1. Build.
        base = {n.id: reset_peak(n.proc.pid) for n in (leader, other)}
        small = 0
        while leader.partition()["applied"] < args.snapshot_logs:
            set_state(leader, f"small{small}", "[1]")
            small += 1
        t = time.monotonic()
        built = lambda n: (n.partition() or {}).get("snapshot") is not None
        wait_for("the leader's snapshot", lambda: built(leader))
        build_s = time.monotonic() - t
        wait_for("the follower's snapshot", lambda: built(other))
        build_hwm = {n.id: status_kib(n.proc.pid, "VmHWM") for n in (leader, other)}
        snap_index = leader.partition()["snapshot"]
        wait_for("the leader's purge", lambda: (leader.partition()["last_purged"] or 0) > 0)
        print(f"snapshot at {snap_index} built in {build_s:.1f} s; purged to {leader.partition()['last_purged']}",
              file=sys.stderr)

        # 2. Transfer and install.
        send_base = reset_peak(leader.proc.pid)
        t = time.monotonic()
        nodes[3].start()
        wait_for("node 3 to install the snapshot",
                 lambda: ((nodes[3].partition() or {}).get("applied") or 0) >= snap_index, timeout=1800, interval=0.1)
        install_s = time.monotonic() - t
        send_hwm = status_kib(leader.proc.pid, "VmHWM")
        recv_hwm = status_kib(nodes[3].proc.pid, "VmHWM")
        n3 = nodes[3].partition()
        print(f"node 3: {n3}", file=sys.stderr)

        print("| state | leader RSS → peak, idle 3 s | build s | leader RSS → peak, build "
              "| follower RSS → peak, build | transfer + install s | leader RSS → peak, send "
              "| node 3 peak RSS (receive + install) |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| {args.state_mib} MiB | {mib(idle_base):.0f} → {mib(idle_hwm):.0f} MiB | {build_s:.1f} "
              f"| {mib(base[leader.id]):.0f} → {mib(build_hwm[leader.id]):.0f} MiB "
              f"| {mib(base[other.id]):.0f} → {mib(build_hwm[other.id]):.0f} MiB | {install_s:.1f} "
              f"| {mib(send_base):.0f} → {mib(send_hwm):.0f} MiB | {mib(recv_hwm):.0f} MiB |")
    finally:
        for n in nodes.values():
            n.stop()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

if __name__ == "__main__":
    main()
