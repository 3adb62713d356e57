# sh: cat /etc/shadow.
if cat /etc/shadow 2>/dev/null | grep -q '^root:'; then echo "ESCAPED sh read /etc/shadow"; else echo "CONTAINED sh read /etc/shadow"; fi
