#!/usr/bin/env bash
# fleetup against an Ansible playbook and a shell loop doing the same work, on this
# machine, in one run; prints the times and the ratios.
#
#   apply to 50 and 200 local nodes: copy the package in, unpack it, switch `current`
#     - fleetup apply (max_parallel 10; it also locks, checks the rules, keeps state and a journal)
#     - ansible-playbook (forks 10, local connection): copy + unarchive + file link
#     - shell: xargs -P10 of cp + unzip + ln/mv
#   check a 10,000-node plan against `ansible-inventory --list` on the same inventory;
#   health-wait efficiency against the ideal and plan memory (benches/apply.rs).
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
echo "$("$ANSIBLE_BIN/ansible" --version | head -n1)"

# Release packages: 20 files, 1 MB unpacked.
mkdir -p "$WORK/repo"
python3 - "$WORK/repo" <<'PY'
import sys, os, zipfile, random, hashlib
repo = sys.argv[1]
random.seed(7)
for v in ("4.4.15", "4.4.16"):
    p = os.path.join(repo, f"emqx-{v}-otp24.3.4.2-1-ubuntu20.04-amd64.zip")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(20):
            z.writestr(f"lib/f{i:03}", " ".join(str(random.randrange(1000)) for _ in range(12500))[:50000])
    d = hashlib.sha256(open(p, "rb").read()).hexdigest()
    open(p + ".sha256", "w").write(f"{d}  {os.path.basename(p)}\n")
PY
PKG="$WORK/repo/emqx-4.4.16-otp24.3.4.2-1-ubuntu20.04-amd64.zip"

now() { date +%s.%N; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

for N in 50 200; do
  D="$WORK/n$N"
  mkdir -p "$D/fleet" "$D/ansible" "$D/shell"
  # fleetup's nodes start on 4.4.15 (installed before the clock starts).
  for i in $(seq 1 "$N"); do
    "$FLEETUP" node upgrade 4.4.15 --root "$D/fleet/n$i" --repo "$WORK/repo" >/dev/null
    mkdir -p "$D/ansible/n$i/releases" "$D/shell/n$i/releases"
  done
  {
    printf 'plan: 1\nname: compare\nproduct: emqx\nrepository: %s\nto: 4.4.16\nstate: %s\nrollout:\n  max_parallel: 10\nnodes:\n' "$WORK/repo" "$D/state"
    for i in $(seq 1 "$N"); do echo "  - { name: n$i, root: $D/fleet/n$i }"; done
  } > "$D/plan.yaml"
  {
    echo "all:"; echo "  hosts:"
    for i in $(seq 1 "$N"); do echo "    n$i: { ansible_connection: local, ansible_python_interpreter: $ANSIBLE_BIN/python, root: $D/ansible/n$i }"; done
  } > "$D/inventory.yaml"
  cat > "$D/playbook.yaml" <<YML
- hosts: all
  gather_facts: false
  tasks:
    - copy: { src: "$PKG", dest: "{{ root }}/releases/" }
    - file: { path: "{{ root }}/releases/4.4.16", state: directory }
    - unarchive: { src: "{{ root }}/releases/$(basename "$PKG")", dest: "{{ root }}/releases/4.4.16", remote_src: true }
    - file: { src: "releases/4.4.16", dest: "{{ root }}/current", state: link, force: true }
YML

  t0=$(now); "$FLEETUP" apply "$D/plan.yaml" --yes >/dev/null; t1=$(now)
  fleet=$(python3 -c "print($t1-$t0)")
  t0=$(now)
  ANSIBLE_HOST_KEY_CHECKING=False "$ANSIBLE_BIN/ansible-playbook" -f 10 -i "$D/inventory.yaml" "$D/playbook.yaml" >/dev/null
  t1=$(now); ansible=$(python3 -c "print($t1-$t0)")
  t0=$(now)
  ls -d "$D"/shell/n* | xargs -P10 -I{} sh -c "cp '$PKG' {}/releases/ && unzip -q {}/releases/$(basename "$PKG") -d {}/releases/4.4.16 && ln -sfn releases/4.4.16 {}/current.tmp && mv -T {}/current.tmp {}/current"
  t1=$(now); shell=$(python3 -c "print($t1-$t0)")
  # The same result everywhere.
  test "$(readlink "$D/fleet/n1/current")" = releases/4.4.16
  test "$(readlink "$D/ansible/n1/current")" = releases/4.4.16
  test -f "$D/ansible/n$N/releases/4.4.16/lib/f019"
  printf 'apply to %3d nodes: fleetup %6.2f s | ansible %7.2f s (%sx slower than fleetup; target >= 20) | shell %6.2f s (fleetup/shell %s; target <= 1.5)\n' \
    "$N" "$fleet" "$ansible" "$(ratio "$ansible" "$fleet")" "$shell" "$(ratio "$fleet" "$shell")"
done

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
t0=$(now); "$FLEETUP" check "$D/plan.yaml" >/dev/null; t1=$(now); fc=$(python3 -c "print($t1-$t0)")
t0=$(now); "$ANSIBLE_BIN/ansible-inventory" -i "$D/inventory.yaml" --list >/dev/null; t1=$(now); ai=$(python3 -c "print($t1-$t0)")
printf 'check of 10,000 nodes: fleetup %.2f s | ansible-inventory --list %.2f s (%sx slower than fleetup)\n' "$fc" "$ai" "$(ratio "$ai" "$fc")"

# Health-wait efficiency against the ideal, the shell baseline at 200 nodes with fleetup's
# own packages, and `plan` memory: the criterion-free benchmark in benches/apply.rs.
cargo bench -q --bench apply 2>/dev/null | grep -E "^(apply|health|fleetup plan|package)"
