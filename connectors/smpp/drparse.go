package smpp

import "bytes"

// matchDR matches a short message's text (Latin-1) against the delivery
// report regex and returns its id and stat groups.
func (c *Config) matchDR(text []byte) (id, stat string, ok bool) {
	if c.defaultDRRegex {
		return parseDefaultDR(text)
	}
	m := c.drRegex.FindStringSubmatch(latin1(text))
	if m == nil {
		return "", "", false
	}
	return m[c.drRegex.SubexpIndex("id")], m[c.drRegex.SubexpIndex("stat")], true
}

// parseDefaultDR matches a delivery receipt's text against DefaultDRRegex
// without the regexp engine (FindStringSubmatch was about 1 % of the
// end-to-end benchmark's CPU) and returns the id and stat groups as the
// regex would: the text is taken as Latin-1 (one character per byte),
// anchored at its start. FuzzParseDefaultDR checks that both agree.
//
// The regex, field by field: "id:" and up to 65 non-space characters;
// optional " sub:", " dlvrd:" (non-space values), " submit date:",
// " done date:" (digits); " stat:" and 5 to 7 capital letters; optional
// " err:"; " text:" or " Text:" and anything. Each separator is one or
// more spaces. No field name is a prefix of another, so an optional field
// whose name follows the spaces is taken (greedily), and if what follows
// it fails, skipping it instead could not have matched either.
func parseDefaultDR(b []byte) (id, stat string, ok bool) {
	if !bytes.HasPrefix(b, []byte("id:")) {
		return "", "", false
	}
	start, i := 3, 3
	for i < len(b) && b[i] != ' ' {
		if i-start == 65 {
			return "", "", false // a 66th non-space character: no space follows the id
		}
		i++
	}
	idEnd := i
	i = optionalField(b, i, "sub:", nonSpace)
	i = optionalField(b, i, "dlvrd:", nonSpace)
	i = optionalField(b, i, "submit date:", digits)
	i = optionalField(b, i, "done date:", digits)
	j, okField := field(b, i, "stat:")
	if !okField {
		return "", "", false
	}
	k := j
	for k < len(b) && k-j < 7 && b[k] >= 'A' && b[k] <= 'Z' {
		k++
	}
	if k-j < 5 {
		return "", "", false
	}
	statEnd := k
	k = optionalField(b, k, "err:", nonSpace)
	if _, okText := field(b, k, "text:"); !okText {
		if _, okText = field(b, k, "Text:"); !okText {
			return "", "", false
		}
	}
	return latin1(b[start:idEnd]), string(b[j:statEnd]), true
}

// field matches one or more spaces and name at i, and returns where the
// field's value starts.
func field(b []byte, i int, name string) (int, bool) {
	j := i
	for j < len(b) && b[j] == ' ' {
		j++
	}
	if j == i || !bytes.HasPrefix(b[j:], []byte(name)) {
		return i, false
	}
	return j + len(name), true
}

// optionalField skips the field name at i with its value (value returns
// where the value ends) when it is there; a field whose value is not
// followed by a space or the end fails the match later, as in the regex.
func optionalField(b []byte, i int, name string, value func([]byte, int) int) int {
	j, ok := field(b, i, name)
	if !ok {
		return i
	}
	end := value(b, j)
	if end < 0 {
		return i
	}
	return end
}

// nonSpace is [^ ]+: one or more characters other than a space.
func nonSpace(b []byte, i int) int {
	j := i
	for j < len(b) && b[j] != ' ' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// digits is \d*.
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
