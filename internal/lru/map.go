package lru

// Map is a bounded map: past Max entries, the least recently touched
// gives way to a new one, its element reused, so that a flood of new keys
// allocates nothing and never goes past the bound (the rate limiter's
// sources, the nodes that answered us). The zero value is empty; Max must
// be set before the first Touch.
type Map[K comparable, V any] struct {
	Max     int
	m       map[K]*Elem[entry[K, V]]
	recent  List[entry[K, V]]
	evicted uint64
}

type entry[K comparable, V any] struct {
	key K
	val V
}

// Touch returns k's value, made the most recent; a key not held gets a
// zero value, evicting the least recent entry when the map is full.
func (m *Map[K, V]) Touch(k K) *V {
	if m.m == nil {
		m.m = make(map[K]*Elem[entry[K, V]])
	}
	e := m.m[k]
	if e == nil {
		if len(m.m) >= m.Max && m.recent.Back() != nil {
			e = m.recent.Back()
			m.recent.Remove(e)
			delete(m.m, e.Value.key)
			m.evicted++
		} else {
			e = new(Elem[entry[K, V]])
		}
		e.Value = entry[K, V]{key: k}
		m.m[k] = e
	}
	m.recent.Touch(e)
	return &e.Value.val
}

// Peek returns k's value without making it more recent.
func (m *Map[K, V]) Peek(k K) (*V, bool) {
	if e := m.m[k]; e != nil {
		return &e.Value.val, true
	}
	return nil, false
}

// Oldest returns the least recent entry; false when the map is empty.
func (m *Map[K, V]) Oldest() (K, *V, bool) {
	if e := m.recent.Back(); e != nil {
		return e.Value.key, &e.Value.val, true
	}
	var zero K
	return zero, nil, false
}

// Delete removes k.
func (m *Map[K, V]) Delete(k K) {
	if e := m.m[k]; e != nil {
		m.recent.Remove(e)
		delete(m.m, k)
	}
}

// Len is the number of entries.
func (m *Map[K, V]) Len() int { return len(m.m) }

// Evicted counts the entries that gave way to new ones.
func (m *Map[K, V]) Evicted() uint64 { return m.evicted }
