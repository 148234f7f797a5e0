#!/usr/bin/env bash
# `make demo`: the local stack, a deploy to two hosts, files indexed, the queue
# status, a second release and a rollback. Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1/6 The local stack: LocalStack (SQS, S3, CloudWatch), osmem-server (OpenSearch API), hosts worker1 + worker2"
sandbox/ctl up

say "2/6 Deploy the worker to both hosts, one at a time (playbooks/deploy.yml)"
"$BIN/ansible-playbook" playbooks/deploy.yml

say "3/6 Upload sample files (Japanese and spaces in their names), send their S3 events, find them in OpenSearch"
"$BIN/python" scripts/demo_feed.py

say "4/6 The queue and its DLQ (playbooks/queue_status.yml)"
"$BIN/ansible-playbook" playbooks/queue_status.yml

say "5/6 A second release (same code, build tag demo-v2) on both hosts at once"
"$BIN/ansible-playbook" playbooks/deploy.yml -e sqs_worker_build_tag=demo-v2 -e deploy_serial=2

say "6/6 One command back to the previous release (playbooks/rollback.yml)"
"$BIN/ansible-playbook" playbooks/rollback.yml

cat <<'NEXT'

== Try next
  ansible-playbook playbooks/deploy.yml -e sqs_worker_build_tag=broken \
      -e sqs_worker_opensearch_endpoint=http://127.0.0.1:9    # a release that fails its health check: rolled back
  ansible-playbook playbooks/rollback.yml                    # run again: forward to the release you left
  ansible-playbook playbooks/backup.yml                      # snapshots in /home/ec2-user/backups on each host
  sandbox/ctl ssh worker1 -- sudo journalctl -u phased-worker -n 20   # a host's journal
  .venv/bin/python scripts/demo_feed.py --query "release"    # more files, another query
  make test                                                  # everything CI runs
  Read docs/deploy.md (deploy, rollback, backups) and docs/architecture.md.
  The stack keeps running; stop it with: make sandbox-down
NEXT
