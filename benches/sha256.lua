-- Benchmark helper: sha256 of a file with rewind.hash (used by benches/backup.sh).
return {
  description = "sha256 of a file (benchmark helper)",
  params = { file = { type = "string", required = true, doc = "file to hash" } },
  run = function(p)
    local sum, size = require("rewind.hash").sha256_file(p.file)
    return { sha256 = sum, size = size }
  end,
}
