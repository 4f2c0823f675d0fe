"""The rules files and the ruleset in force: finding and loading the files (`rulesource`),
reloading them on change or SIGHUP and swapping the new ruleset in whole (`reload`). May import
`core`, `store`, `protocol` and `decisions`."""
