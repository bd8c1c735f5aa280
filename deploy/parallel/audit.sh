#!/bin/bash
# vouch on one big host with GNU parallel: N shards at once, then the
# merge. PARALLEL_SEQ (1..N) is what `--shard auto/N` reads (minus one).
#
#   deploy/parallel/audit.sh /srv/data s3://backups/data 16
#
# Each shard has its own index, so shards never wait for each other's
# lock; the shard's exit 1 (discrepancies) is not a failure here — the
# merge decides the verdict and exits 0, 1 or 2 (a shard missing).
set -u
ROOT=$1 REMOTE=$2 N=${3:-$(nproc)}
STATE=${STATE:-/var/lib/vouch}
OUT=${OUT:-$STATE/reports/$(date -u +%Y-%m-%dT%H%M)}
mkdir -p "$OUT"
seq 1 "$N" | parallel -j "$N" --halt never \
    vouch audit "$ROOT" --remote "$REMOTE" ${INVENTORY:+--inventory "$INVENTORY"} \
        --shard "auto/$N" --index "$STATE/shard-{#}.sqlite3" \
        --format json --output "$OUT/shard-{#}.json"
exec vouch merge "$OUT" --format table --metrics "$STATE/vouch.prom"
