# sh: host directories (/var/lib, /run, /home, /root, /sys) must not exist inside.
found=""
for d in /var/lib /run /home /root /sys/kernel; do [ -d "$d" ] && found="$found $d"; done
if [ -n "$found" ]; then echo "ESCAPED sh sees host dirs:$found"; else echo "CONTAINED sh sees no host dirs"; fi
