#!/usr/bin/env bash
# fleetup against an Ansible playbook and a shell loop doing the same work, on this
# machine, in one run; prints the times and the ratios.
#
#   apply to 50 local nodes: copy the package in, unpack it, switch `current`
#     - fleetup apply (max_parallel 10; it also locks, checks the rules, keeps state and a journal)
#     - ansible-playbook (forks 10, local connection): copy + unarchive + file link
#     - shell: xargs -P10 of cp + unzip + ln/mv
#   check a 10,000-node plan against `ansible-inventory --list` on the same inventory.
#
# Each is run FLEETUP_BENCH_RUNS times (default 5) a side, the sides taking turns going
# first; every run of fleetup and of the shell takes the nodes one patch further (a new
# package each run), Ansible's playbook unpacks into a directory of its own each run.
# Prints median (min–max) and, for scripts/benchmarks, the rows of BENCHMARKS.md.
#
# Targets: fleetup at least 20x faster than Ansible, within 1.5x of the shell loop.
# Needs python3 (venv, pip), unzip, xargs. Usage: benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
FLEETUP="$PWD/target/release/fleetup"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "Installing ansible-core into a throwaway virtualenv…"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q ansible-core
ANSIBLE_BIN="$WORK/venv/bin"
export ANSIBLE_HOST_KEY_CHECKING=False
echo "$("$ANSIBLE_BIN/ansible" --version | head -n1)"

# Release packages: 20 files, 1 MB unpacked.
mkdir -p "$WORK/repo"
RUNS=${FLEETUP_BENCH_RUNS:-5}
python3 - "$WORK/repo" "$RUNS" <<'PY'
import sys, os, zipfile, random, hashlib
repo = sys.argv[1]
random.seed(7)
for v in [f"4.4.{p}" for p in range(15, 16 + int(sys.argv[2]))]:
    p = os.path.join(repo, f"emqx-{v}-otp24.3.4.2-1-ubuntu20.04-amd64.zip")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(20):
            z.writestr(f"lib/f{i:03}", " ".join(str(random.randrange(1000)) for _ in range(12500))[:50000])
    d = hashlib.sha256(open(p, "rb").read()).hexdigest()
    open(p + ".sha256", "w").write(f"{d}  {os.path.basename(p)}\n")
PY

now() { date +%s.%N; }
# median (min–max) of the numbers on stdin, with $1 decimals and scaled by $2 (default 1)
stats() { python3 -c "
import sys
v = sorted(float(x) * float('${2:-1}') for x in sys.stdin.read().split())
print(f'{v[len(v)//2]:.${1}f} ({v[0]:.${1}f}–{v[-1]:.${1}f})')"; }
# the ratios of the paired numbers of two files, as stats shows them
ratios() { paste "$1" "$2" | python3 -c "
import sys
v = sorted(float(a) / float(b) for a, b in (l.split() for l in sys.stdin))
print(f'{v[len(v)//2]:.2f} ({v[0]:.2f}–{v[-1]:.2f})')"; }
# wall seconds of a command, which must succeed
timed() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); python3 -c "print($t1 - $t0)"; }
PKG() { echo "$WORK/repo/emqx-4.4.$1-otp24.3.4.2-1-ubuntu20.04-amd64.zip"; }

N=50
D="$WORK/n$N"
mkdir -p "$D/fleet" "$D/ansible" "$D/shell"
# fleetup's nodes start on 4.4.15 (installed before the clock starts).
for i in $(seq 1 "$N"); do
  "$FLEETUP" node upgrade 4.4.15 --root "$D/fleet/n$i" --repo "$WORK/repo" >/dev/null
  mkdir -p "$D/ansible/n$i/releases" "$D/shell/n$i/releases"
done
{
  echo "all:"; echo "  hosts:"
  for i in $(seq 1 "$N"); do echo "    n$i: { ansible_connection: local, ansible_python_interpreter: $ANSIBLE_BIN/python, root: $D/ansible/n$i }"; done
} > "$D/inventory.yaml"

fleet_run() { # $1: patch version
  {
    printf 'plan: 1\nname: compare\nproduct: emqx\nrepository: %s\nto: 4.4.%s\nstate: %s\nrollout:\n  max_parallel: 10\nnodes:\n' "$WORK/repo" "$1" "$D/state"
    for i in $(seq 1 "$N"); do echo "  - { name: n$i, root: $D/fleet/n$i }"; done
  } > "$D/plan.yaml"
  timed "$FLEETUP" apply "$D/plan.yaml" --yes
  test "$(readlink "$D/fleet/n$N/permanent")" = "releases/4.4.$1"
}
ansible_run() { # $1: patch version
  local pkg; pkg=$(PKG "$1")
  cat > "$D/playbook.yaml" <<YML
- hosts: all
  gather_facts: false
  tasks:
    - copy: { src: "$pkg", dest: "{{ root }}/releases/" }
    - file: { path: "{{ root }}/releases/4.4.$1", state: directory }
    - unarchive: { src: "{{ root }}/releases/$(basename "$pkg")", dest: "{{ root }}/releases/4.4.$1", remote_src: true }
    - file: { src: "releases/4.4.$1", dest: "{{ root }}/current", state: link, force: true }
YML
  timed "$ANSIBLE_BIN/ansible-playbook" -f 10 -i "$D/inventory.yaml" "$D/playbook.yaml"
  test -f "$D/ansible/n$N/releases/4.4.$1/lib/f019"
  test "$(readlink "$D/ansible/n$N/current")" = "releases/4.4.$1"
}
shell_run() { # $1: patch version
  local pkg; pkg=$(PKG "$1")
  timed bash -c "ls -d '$D'/shell/n* | xargs -P10 -I{} sh -c \"cp '$pkg' {}/releases/ && unzip -q {}/releases/$(basename "$pkg") -d {}/releases/4.4.$1 && ln -sfn releases/4.4.$1 {}/current.tmp && mv -T {}/current.tmp {}/current\""
  test "$(readlink "$D/shell/n$N/current")" = "releases/4.4.$1"
}

: > "$D/fleet.t"; : > "$D/ansible.t"; : > "$D/shell.t"
for k in $(seq 0 $((RUNS - 1))); do
  v=$((16 + k))
  # Each side first in turn.
  case $((k % 3)) in
    0) order="fleet ansible shell" ;;
    1) order="ansible shell fleet" ;;
    *) order="shell fleet ansible" ;;
  esac
  for side in $order; do "${side}_run" "$v" >> "$D/$side.t"; done
done
fl=$(stats 2 < "$D/fleet.t"); an=$(stats 1 < "$D/ansible.t"); sh_=$(stats 2 < "$D/shell.t")
printf 'apply to %d local nodes, %d runs a side: fleetup %s s | ansible %s s (ansible/fleetup %s; target >= 20) | shell %s s (fleetup/shell %s; target <= 1.5)\n' \
  "$N" "$RUNS" "$fl" "$an" "$(ratios "$D/ansible.t" "$D/fleet.t")" "$sh_" "$(ratios "$D/fleet.t" "$D/shell.t")"
echo "TABLE | \`apply\` to $N local nodes (1 MB, 20 files, checksummed; max_parallel 10) vs Ansible | $fl s | ansible-playbook (forks 10, local connection; copy, unarchive, link) $an s | Ansible takes $(ratios "$D/ansible.t" "$D/fleet.t")× fleetup's time | Ansible ≥ 20× |"
echo "TABLE | the same vs a shell loop | $fl s | shell: \`xargs -P10\` of cp + unzip + link switch $sh_ s | $(ratios "$D/fleet.t" "$D/shell.t") | ≤ 1.5 |"

# check of 10,000 nodes against ansible-inventory on the equivalent inventory.
D="$WORK/big"; mkdir -p "$D"
{
  printf 'plan: 1\nname: big\nproduct: emqx\nrepository: %s\nto: 4.4.16\nhealth:\n  http: "http://{host}:{port}/status"\ndefaults:\n  vars: { port: 18083 }\nnodes:\n' "$WORK/repo"
  for i in $(seq 0 9999); do echo "  - { name: node-$i, host: 10.0.$((i/256)).$((i%256)), root: /srv/node-$i, tags: [rack-$((i%20))] }"; done
} > "$D/plan.yaml"
{
  echo "all:"; echo "  vars: { status_port: 18083 }"; echo "  children:"
  for r in $(seq 0 19); do echo "    rack_$r:"; echo "      hosts:"; for i in $(seq "$r" 20 9999); do echo "        node-$i: { ansible_host: 10.0.$((i/256)).$((i%256)), root: /srv/node-$i }"; done; done
} > "$D/inventory.yaml"
: > "$D/fleet.t"; : > "$D/ansible.t"
for k in $(seq 0 $((RUNS - 1))); do
  if [ $((k % 2)) = 0 ]; then
    timed "$FLEETUP" check "$D/plan.yaml" >> "$D/fleet.t"
    timed "$ANSIBLE_BIN/ansible-inventory" -i "$D/inventory.yaml" --list >> "$D/ansible.t"
  else
    timed "$ANSIBLE_BIN/ansible-inventory" -i "$D/inventory.yaml" --list >> "$D/ansible.t"
    timed "$FLEETUP" check "$D/plan.yaml" >> "$D/fleet.t"
  fi
done
fc=$(stats 2 < "$D/fleet.t"); ai=$(stats 1 < "$D/ansible.t")
printf 'check of 10,000 nodes, %d runs a side: fleetup %s s | ansible-inventory --list %s s (%s× fleetup'"'"'s time)\n' "$RUNS" "$fc" "$ai" "$(ratios "$D/ansible.t" "$D/fleet.t")"
echo "TABLE | \`check\` of a 10,000-node plan (roots not on this machine: no store read) vs \`ansible-inventory --list\` of the same inventory | $fc s | $ai s | Ansible takes $(ratios "$D/ansible.t" "$D/fleet.t")× fleetup's time | |"
