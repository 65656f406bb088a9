#!/bin/sh
# Builds an RGB image-folder dataset of real drawings nobody here made: the icons of the
# Debian package oxygen-icon-theme (KDE's Oxygen icons, LGPL-3), one class per icon
# category. Each icon is taken at its 22, 32, 48 and 64 pixel renderings (the tool scales
# them to data.image_size); every rendering of one icon goes to the same split, chosen by
# a checksum of the icon's name (10% test, 10% validation), so no icon is in two splits.
#
#   apt-get install oxygen-icon-theme
#   scripts/make-oxygen-icons.sh data/oxygen
#   ofa run --config configs/oxygen.yaml --out runs/oxygen
set -eu
out=${1:-data/oxygen}
src=${OXYGEN_DIR:-/usr/share/icons/oxygen/base}
[ -d "$src" ] || { echo "no $src: apt-get install oxygen-icon-theme" >&2; exit 1; }
classes="actions apps devices mimetypes places status"
rm -rf "$out.tmp"
for c in $classes; do
	for s in train val test; do mkdir -p "$out.tmp/$s/$c"; done
	for size in 22 32 48 64; do
		for f in "$src/${size}x${size}/$c"/*.png; do
			[ -f "$f" ] || continue
			name=$(basename "$f" .png)
			k=$(printf %s "$c/$name" | cksum | cut -d' ' -f1)
			case $((k % 10)) in
			0) split=test ;;
			1) split=val ;;
			*) split=train ;;
			esac
			cp "$f" "$out.tmp/$split/$c/$name-$size.png"
		done
	done
done
printf '%s\n' $classes > "$out.tmp/classes.txt"
rm -rf "$out"
mv "$out.tmp" "$out"
for s in train val test; do echo "$s: $(find "$out/$s" -name '*.png' | wc -l) images"; done
