#!/bin/bash
# vouch as an AWS Batch array job, then a merge job that depends on it.
#
# AWS Batch sets AWS_BATCH_JOB_ARRAY_INDEX (0..size-1) in each child;
# `--shard auto/N` reads it. A job that depends on an array job (without
# type N_TO_N) starts when every child has finished, whatever their exit.
#
# Run the compute environment in the bucket's region: a deep audit reads
# every byte, and in-region S3 reads cost no transfer.
#
# Needs: a job queue, a job definition `vouch` whose image has vouch and
# whose role can read the backup bucket and the inventory; and
# a shared file system (EFS at /mnt/efs) for each shard's index, so later
# runs only hash what changed, and for the shard reports the merge reads.
set -euo pipefail
N=16
RUN=$(date -u +%Y-%m-%d)
QUEUE=${QUEUE:-vouch}
REPORTS=/mnt/efs/vouch/reports/$RUN # shared by the shards and the merge

array=$(aws batch submit-job --job-name "vouch-audit-$RUN" \
    --job-queue "$QUEUE" --job-definition vouch \
    --array-properties size=$N \
    --container-overrides "$(cat <<JSON
{"command": ["sh", "-c",
  "mkdir -p $REPORTS && exec vouch audit /mnt/efs/data --remote s3://backups/data --inventory s3://inventory-dest/inv/backups/daily/ --shard auto/$N --index /mnt/efs/vouch/shard-\$AWS_BATCH_JOB_ARRAY_INDEX.sqlite3 --max-age 26h --format json --output $REPORTS/shard-\$AWS_BATCH_JOB_ARRAY_INDEX.json"]}
JSON
)" --query jobId --output text)

aws batch submit-job --job-name "vouch-merge-$RUN" \
    --job-queue "$QUEUE" --job-definition vouch \
    --depends-on "jobId=$array" \
    --container-overrides "{\"command\": [\"vouch\", \"merge\", \"$REPORTS/\", \"--format\", \"json\", \"--output\", \"$REPORTS/merged.json\"]}"
