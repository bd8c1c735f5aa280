# vouch on Nomad: one batch job of N allocations audits N shards of a
# bucket; each writes its report to S3, and the merge reads them there.
#
#   nomad job run -var run_id=$(date -u +%F) audit.nomad.hcl
#   # when every allocation has finished (exit 1 = discrepancies, not a failure):
#   vouch merge s3://vouch-reports/data/$(date -u +%F)/ --metrics /var/lib/node_exporter/vouch.prom
#
# Nomad gives each allocation NOMAD_ALLOC_INDEX (0..count-1); `--shard
# auto/16` reads it. Keep `count` and N equal. Reports go to a bucket, not
# to the audited prefix (vouch refuses that), so the hosts need no shared
# file system; each host keeps its shard's index on local disk.

variable "run_id" {
  type = string
}

job "vouch-audit" {
  type = "batch"

  group "shards" {
    count = 16

    restart {
      attempts = 2          # a shard that fails (exit 2) is tried again
      mode     = "fail"
    }

    task "audit" {
      driver = "exec"

      config {
        command = "/usr/local/bin/vouch"
        args = [
          "--format", "json",
          "--index", "/var/lib/vouch/shard-${NOMAD_ALLOC_INDEX}.sqlite3",
          "--output", "s3://vouch-reports/data/${var.run_id}/shard-${NOMAD_ALLOC_INDEX}.json",
          "audit", "/srv/data",
          "--remote", "s3://backups/data",
          "--inventory", "s3://inventory-dest/inv/backups/daily/",
          "--shard", "auto/16",
          "--max-age", "26h",
        ]
      }

      env {
        AWS_REGION = "eu-west-1"   # credentials: the host's instance role
      }

      resources {
        cpu    = 2000
        memory = 1024               # per shard: does not grow with N
      }
    }
  }
}
