#!/bin/sh
# Peak memory against dataset size, and decode throughput first run vs cached run, for
# folder datasets through the memory-mapped cache (scripts/vision-memory.go).
#   scripts/vision-memory.sh [WORKDIR] [SIZES...]
set -eu
work=${1:-/tmp/ofa-vision-memory}
shift || true
sizes=${*:-5000 20000 60000}
go build -o "$work/vm" scripts/vision-memory.go 2>/dev/null || { mkdir -p "$work" && go build -o "$work/vm" scripts/vision-memory.go; }
for n in $sizes; do
	rm -rf "$work/cache-$n"
	for run in first cached; do
		printf '{"n":%s,"run":"%s",' "$n" "$run"
		"$work/vm" -dir "$work/data-$n" -n "$n" -cache "$work/cache-$n" | sed 's/^{//'
	done
done
