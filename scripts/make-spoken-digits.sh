#!/bin/sh
# make-spoken-digits.sh OUTDIR [MKDIGITS FLAGS...]
#
# Synthesises the spoken-digit keyword-spotting set (package data/speech) into OUTDIR in the
# layout of Google's Speech Commands: <digit>/<speaker>_nohash_<n>.wav, validation_list.txt
# and testing_list.txt, split by speaker. By default every espeak-ng English voice with
# every classic variant (8 x 25 = 200 speakers, 20 for validation and 20 for test), three
# renditions of each digit per speaker: 6000 one-second 16 kHz 16-bit clips, about 190 MB.
#
# Further arguments go to the generator (go run ./data/speech/internal/mkdigits -help), e.g.
#   make-spoken-digits.sh /tmp/digits -val-speakers 30 -test-speakers 30 -renditions 5
#   make-spoken-digits.sh /tmp/digits -variants all     # every installed variant
# Load the result with speech.LoadCommands(OUTDIR, speech.DefaultFrontend(), speech.DigitClasses()).
#
# Needs Go and espeak-ng (Debian/Ubuntu: apt-get install espeak-ng).
set -eu

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
fi
out=$1
shift
case $out in
/*) ;;
*) out=$(pwd)/$out ;;
esac

if ! command -v espeak-ng >/dev/null 2>&1; then
	echo "make-spoken-digits.sh: espeak-ng not found (apt-get install espeak-ng)" >&2
	exit 1
fi

cd "$(dirname "$0")/.."
exec go run ./data/speech/internal/mkdigits -out "$out" "$@"
