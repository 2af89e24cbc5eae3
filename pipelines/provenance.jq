# provenance.jq: make reproduce's provenance.json (jq -n with --arg commit, dirty, version,
# date, settings "K=V K=V ...", test_sha and --slurpfile models: ckpt-info --json of each model).
{
  code: {version: $version, commit: $commit, modified_files: ($dirty | tonumber)},
  date: $date,
  data: {heldout: "data/brown/test.jsonl (every 10th Brown document)", sha256_16: $test_sha},
  settings: ($settings | split(" ") | map(split("=") | {(.[0]): (.[1:] | join("="))}) | add),
  models: $models[0]
}
