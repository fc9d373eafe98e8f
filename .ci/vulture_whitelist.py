"""Names vulture reports as unused that are used, in ways it cannot see (read by `vulture` as
one more source file: a name mentioned here counts as used). One line per name, grouped by
module, each with why it stays. Regenerate candidates with
`vulture --make-whitelist` and keep only those that are really used."""
