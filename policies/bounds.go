package policies

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Evaluation bounds. A few lines of policy can ask for more than a host
// has: cty caps range() at 1,024 values, but for-expressions nested three
// deep over it ask for a billion. Every for-expression's collection is
// charged to one budget per policy before it is iterated, every function
// result and every local is measured, and evaluation has a time limit, so
// such a policy fails within seconds with a diagnostic at the expression,
// instead of taking gigabytes and minutes.
const (
	// DefaultMaxValues is how many values (for-expression iterations,
	// elements of one collection, sources of one exposure) a policy may
	// evaluate; PORTWARDEN_MAX_VALUES raises it.
	DefaultMaxValues = 10_000_000
	// DefaultMaxEvalTime bounds the evaluation of a policy;
	// PORTWARDEN_MAX_EVAL_TIME (a Go duration) raises it.
	DefaultMaxEvalTime = 5 * time.Second
	// maxStringBytes is the longest string one expression may make.
	maxStringBytes = 64 << 20
	// guardFunction wraps the collection of every for-expression.
	guardFunction = "for_expression_limit"
)

// limitsFromEnv fills the limits not set in opts.
func limitsFromEnv(opts *Options) {
	if opts.MaxValues <= 0 {
		opts.MaxValues = DefaultMaxValues
		if v, err := strconv.Atoi(os.Getenv("PORTWARDEN_MAX_VALUES")); err == nil && v > 0 {
			opts.MaxValues = v
		}
	}
	if opts.MaxEvalTime <= 0 {
		opts.MaxEvalTime = DefaultMaxEvalTime
		if v, err := time.ParseDuration(os.Getenv("PORTWARDEN_MAX_EVAL_TIME")); err == nil && v > 0 {
			opts.MaxEvalTime = v
		}
	}
}

// budget is what is left of the evaluation bounds of one policy.
type budget struct {
	max      int
	spent    int
	maxTime  time.Duration
	start    time.Time
	reported bool // the error was returned once; later charges fail quietly
}

// limitErr marks the errors of the bounds so that their diagnostics can
// be retitled.
const limitErr = "exceeds portwarden's evaluation limit"

func (b *budget) raiseHint() string {
	return fmt.Sprintf("If the policy really needs that, raise the limit with PORTWARDEN_MAX_VALUES (now %d) or PORTWARDEN_MAX_EVAL_TIME (now %s).", b.max, b.maxTime)
}

// charge spends n values; it fails once the budget or the time is
// exceeded.
func (b *budget) charge(n int) error {
	b.spent += n
	switch {
	case b.spent > b.max:
		return fmt.Errorf("this for-expression %s: together with the for-expressions around it and before it, the policy asks for more than %d values (nested for-expressions multiply their collections). %s", limitErr, b.max, b.raiseHint())
	case time.Since(b.start) > b.maxTime:
		return fmt.Errorf("this for-expression %s: evaluating the policy has taken longer than %s. %s", limitErr, b.maxTime, b.raiseHint())
	}
	return nil
}

func (b *budget) exhausted() bool {
	return b.spent > b.max || time.Since(b.start) > b.maxTime
}

// guard is the function every for-expression's collection passes
// through: it charges the collection's length. Once the budget is gone it
// fails once (the diagnostic) and afterwards hands back an empty
// collection, so that the for-expressions around it stop iterating
// instead of collecting a billion repeated errors.
func (b *budget) guard() function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "collection", Type: cty.DynamicPseudoType, AllowUnknown: true, AllowNull: true, AllowDynamicType: true, AllowMarked: true}},
		Type:   func([]cty.Value) (cty.Type, error) { return cty.DynamicPseudoType, nil },
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v := args[0]
			if !v.IsKnown() || v.IsNull() || !v.CanIterateElements() {
				return v, nil
			}
			if b.reported && b.exhausted() {
				return cty.DynamicVal, nil
			}
			if err := b.charge(v.LengthInt()); err != nil {
				b.reported = true
				return cty.NilVal, err
			}
			return v, nil
		},
	})
}

// emptyLike is an empty collection of v's kind.
func emptyLike(v cty.Value) cty.Value {
	t := v.Type()
	switch {
	case t.IsListType():
		return cty.ListValEmpty(t.ElementType())
	case t.IsSetType():
		return cty.SetValEmpty(t.ElementType())
	case t.IsMapType():
		return cty.MapValEmpty(t.ElementType())
	case t.IsObjectType():
		return cty.EmptyObjectVal
	}
	return cty.EmptyTupleVal
}

// bounded wraps a function so that a result too large to be a policy
// value is an error instead of the next step's input.
func (b *budget) bounded(name string, f function.Function) function.Function {
	spec := &function.Spec{
		Params:   f.Params(),
		VarParam: f.VarParam(),
		Type:     func(args []cty.Value) (cty.Type, error) { return f.ReturnTypeForValues(args) },
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			v, err := f.Call(args)
			if err != nil {
				return v, err
			}
			if err := b.checkSize(v, "the result of "+name+"()"); err != nil {
				return cty.NilVal, err
			}
			return v, nil
		},
	}
	return function.New(spec)
}

// checkSize refuses a value with more elements (counted through every
// level) than the budget's maximum, or a string longer than
// maxStringBytes.
func (b *budget) checkSize(v cty.Value, what string) error {
	elems, bytes := 0, 0
	var walk func(v cty.Value) bool
	walk = func(v cty.Value) bool {
		if !v.IsKnown() || v.IsNull() {
			return true
		}
		v, _ = v.Unmark()
		switch {
		case v.Type() == cty.String:
			bytes += len(v.AsString())
		case v.CanIterateElements():
			elems += v.LengthInt()
			if elems > b.max {
				return false
			}
			for it := v.ElementIterator(); it.Next(); {
				_, e := it.Element()
				if !walk(e) {
					return false
				}
			}
		}
		return elems <= b.max && bytes <= maxStringBytes
	}
	if walk(v) {
		return nil
	}
	if bytes > maxStringBytes {
		return fmt.Errorf("%s %s: it is longer than %d MiB.", what, limitErr, maxStringBytes>>20)
	}
	return fmt.Errorf("%s %s: it holds more than %d values. %s", what, limitErr, b.max, b.raiseHint())
}

// guardForExpressions routes the collection of every for-expression in a
// native-syntax file through the guard function. The call takes the
// for-expression's range, so that its diagnostic points at the
// for-expression that grew too large.
func guardForExpressions(f *hcl.File) {
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return // JSON: no for-expressions outside templates
	}
	hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
		fe, ok := n.(*hclsyntax.ForExpr)
		if !ok {
			return nil
		}
		if call, ok := fe.CollExpr.(*hclsyntax.FunctionCallExpr); ok && call.Name == guardFunction {
			return nil // already guarded (a file decoded twice)
		}
		r := fe.SrcRange
		fe.CollExpr = &hclsyntax.FunctionCallExpr{Name: guardFunction, Args: []hclsyntax.Expression{fe.CollExpr},
			NameRange: r, OpenParenRange: r, CloseParenRange: r}
		return nil
	})
}

// retitleLimitDiagnostics gives the bound's errors a title of their own
// instead of HCL's generic "Error in function call".
func retitleLimitDiagnostics(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		if d.Summary != "Error in function call" || !strings.Contains(d.Detail, limitErr) {
			continue
		}
		d.Summary = "Policy too large to evaluate"
		if _, msg, ok := strings.Cut(d.Detail, " failed: "); ok {
			d.Detail = strings.TrimSuffix(msg, ".")
		}
		if !strings.HasSuffix(d.Detail, ".") {
			d.Detail += "."
		}
	}
	return diags
}
