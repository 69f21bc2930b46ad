package schemas

import "fmt"

// GokaCodec adapts a Codec to goka's Codec interface (Encode(any) and
// Decode returning any), so goka processors and franz-go clients share one
// wire format. Encode accepts *T or T.
type GokaCodec[T any] struct{ C *Codec[T] }

// Encode implements goka.Codec.
func (g GokaCodec[T]) Encode(value any) ([]byte, error) {
	switch v := value.(type) {
	case *T:
		return g.C.Encode(v)
	case T:
		return g.C.Encode(&v)
	}
	return nil, fmt.Errorf("goka codec for %s: cannot encode %T", g.C.kind.Name, value)
}

// Decode implements goka.Codec, returning *T.
func (g GokaCodec[T]) Decode(data []byte) (any, error) {
	v := new(T)
	if err := g.C.Decode(data, v); err != nil {
		return nil, err
	}
	return v, nil
}
