"""A mutation fuzzer for config files: delete, duplicate, re-indent, corrupt, truncate lines,
put odd YAML tokens in values. Shared by the config fuzzer and the reload tests."""

TOKENS = ["", "~", "null", "-1", "0", "99999999999", "1.5", "true", "[]", "{}", "[1, 2]", "'x'",
          "p9", "ovsbr9", "198.18.0.999", "::1", "02:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "\"\"",
          "*anchor", "&anchor x", "!!binary AAAA", "!!python/object:os.system", "{a: 1}", "é",
          "12:34:56", "0x1F", "yes", "NaN", "'a\nb'", "- x"]


def mutate(text, rnd):
    lines = text.splitlines()
    for _ in range(rnd.randint(1, 3)):
        if not lines:
            break
        i = rnd.randrange(len(lines))
        op = rnd.randrange(7)
        line = lines[i]
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, line)
        elif op == 2 and ":" in line:
            key, _, _ = line.partition(":")
            lines[i] = "%s: %s" % (key, rnd.choice(TOKENS))
        elif op == 3:
            lines[i] = " " * rnd.randint(0, 6) + line.lstrip()
        elif op == 4 and line:
            j = rnd.randrange(len(line))
            lines[i] = line[:j] + rnd.choice("{}[]:,-'\"#&*!|>%@` \t") + line[j + 1:]
        elif op == 5 and ":" in line:
            key, sep, rest = line.partition(":")
            lines[i] = key + "x" + sep + rest   # an unknown key
        else:
            lines = lines[:i]                   # truncated file
    return "\n".join(lines) + "\n"
