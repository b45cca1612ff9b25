// Op registrations of masked_dense: the fused op (one kernel on GPU) and its gradient, and the
// row prologue the CPU path composes with TensorFlow's own MatMul/BiasAdd/activation.
#include <string>

#include "activations.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf_compat.h"

namespace safeops {
namespace tf {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

namespace {

// The "activation" attribute: the names of activations.h's table, default linear.
const std::string kActivations =
    "activation: {" + activation_names("'", ", ", ", ") + "} = 'linear'";

// x [..., K], kernel [K, N], bias [N]: checks the dims agree, returns N and x's leading dims.
Status dense_shapes(InferenceContext* c, ShapeHandle* leading, DimensionHandle* n) {
  ShapeHandle x, kernel, bias;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 2, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &kernel));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 1, &bias));
  DimensionHandle k;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, -1), c->Dim(kernel, 0), &k));
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(kernel, 1), c->Dim(bias, 0), n));
  return c->Subshape(x, 0, -1, leading);
}

// The "indicators" attribute of the fused op and its gradient: how many indicator_kernel inputs
// (grad_indicator_kernel outputs) there are, 0 or 1. A list of length 0 by default, so that a
// graph written before indicator weights existed (three inputs, three gradient outputs, no
// attribute) loads as it was.
const char kIndicatorsAttr[] = "indicators: int >= 0 = 0";

Status indicator_count(InferenceContext* c, int* n) {
  TF_RETURN_IF_ERROR(c->GetAttr("indicators", n));
  if (*n > 1) return invalid_argument("masked_dense: indicators must be 0 or 1, got ", *n);
  return ok_status();
}

bool saves_pre_activation(InferenceContext* c) {
  std::string name;
  Activation act;
  return c->GetAttr("activation", &name).ok() && parse_activation(name, &act) &&
         saved_for(act) == Saved::kPreActivation;
}

// The epilogue ops' outputs: input 0 (matmul [..., N]) with the bias (input bias_input, [N])
// merged into its last dimension, and pre_activation as for MaskedDense. n (if non-null) gets N.
Status epilogue_shapes(InferenceContext* c, int bias_input, DimensionHandle* n_out) {
  ShapeHandle mm, bias;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &mm));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(bias_input), 1, &bias));
  DimensionHandle n;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(mm, -1), c->Dim(bias, 0), &n));
  ShapeHandle leading, out;
  TF_RETURN_IF_ERROR(c->Subshape(mm, 0, -1, &leading));
  TF_RETURN_IF_ERROR(c->Concatenate(leading, c->Vector(n), &out));
  c->set_output(0, out);
  c->set_output(1, saves_pre_activation(c) ? out : c->Vector(0));
  if (n_out != nullptr) *n_out = n;
  return ok_status();
}

}  // namespace

REGISTER_OP("Safeops>MaskedDense")
    .Input("x: T")
    .Input("kernel: T")
    .Input("bias: T")
    .Input("indicator_kernel: indicators * T")
    .Output("output: T")
    .Output("pre_activation: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr(kActivations)
    .Attr("renormalize: bool = false")
    .Attr("missing: {'nan', 'nonfinite'} = 'nan'")
    .Attr(kIndicatorsAttr)
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle leading, out;
      DimensionHandle n;
      TF_RETURN_IF_ERROR(dense_shapes(c, &leading, &n));
      int indicators = 0;
      TF_RETURN_IF_ERROR(indicator_count(c, &indicators));
      if (indicators == 1) {  // indicator_kernel has the kernel's shape [K, N]
        ShapeHandle u;
        TF_RETURN_IF_ERROR(c->Merge(c->input(3), c->input(1), &u));
      }
      TF_RETURN_IF_ERROR(c->Concatenate(leading, c->Vector(n), &out));
      c->set_output(0, out);
      c->set_output(1, saves_pre_activation(c) ? out : c->Vector(0));
      return ok_status();
    })
    .Doc(R"doc(
Fused NaN-masked dense layer (docs/design.md): with m = missing(x), xf = m ? 0 : x and
s = renormalize ? (n_obs > 0 ? K / n_obs : 0) : 1 per row, output = act(z) with
z = s * (xf @ kernel) + bias, plus m @ indicator_kernel (not scaled by s) when indicators = 1.
pre_activation is z for activations whose derivative needs it (Saved::kPreActivation in
csrc/kernels/activations.h), otherwise an empty vector.
)doc");

REGISTER_OP("Safeops>MaskedDenseGrad")
    .Input("x: T")
    .Input("kernel: T")
    .Input("saved: T")
    .Input("grad: T")
    .Output("grad_x: T")
    .Output("grad_kernel: T")
    .Output("grad_bias: T")
    .Output("grad_indicator_kernel: indicators * T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr(kActivations)
    .Attr("renormalize: bool = false")
    .Attr("missing: {'nan', 'nonfinite'} = 'nan'")
    .Attr(kIndicatorsAttr)
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle kernel;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &kernel));
      int indicators = 0;
      TF_RETURN_IF_ERROR(indicator_count(c, &indicators));
      c->set_output(0, c->input(0));
      c->set_output(1, kernel);
      c->set_output(2, c->Vector(c->Dim(kernel, 1)));
      if (indicators == 1) c->set_output(3, kernel);
      return ok_status();
    })
    .Doc(R"doc(
Gradient of MaskedDense: dz = grad * act'(.) from `saved` (the output or the pre-activation, as
the activation's row in csrc/kernels/activations.h says), grad_bias = sum over rows of dz,
grad_kernel = xf^T @ (s * dz), grad_x = m ? 0 : s * (dz @ kernel^T), and with indicators = 1
grad_indicator_kernel = m^T @ dz (the indicator weights themselves are not needed).
)doc");

REGISTER_OP("Safeops>MaskedDenseInput")
    .Input("x: T")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("renormalize: bool = false")
    .Attr("missing: {'nan', 'nonfinite'} = 'nan'")
    .Attr("indicator: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &x));
      bool indicator = false;
      TF_RETURN_IF_ERROR(c->GetAttr("indicator", &indicator));
      if (!indicator) {
        c->set_output(0, x);
        return ok_status();
      }
      ShapeHandle leading, out;
      DimensionHandle twice_k;
      TF_RETURN_IF_ERROR(c->Subshape(x, 0, -1, &leading));
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(x, -1), 2, &twice_k));
      TF_RETURN_IF_ERROR(c->Concatenate(leading, c->Vector(twice_k), &out));
      c->set_output(0, out);
      return ok_status();
    })
    .Doc(R"doc(
masked_dense's row prologue: output = m ? 0 : s * x over the last axis (one pass; missing count
and scale per row), ready for MatMul. With indicator, the output's last axis is 2K: each row
continues with m ? 1 : 0, the operand of [kernel; indicator_kernel].
)doc");

REGISTER_OP("Safeops>MaskedDenseInputGrad")
    .Input("x: T")
    .Input("grad: T")
    .Output("grad_x: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("renormalize: bool = false")
    .Attr("missing: {'nan', 'nonfinite'} = 'nan'")
    .Attr("indicator: bool = false")
    .SetShapeFn(::tensorflow::shape_inference::UnchangedShape)
    .Doc(R"doc(
Gradient of MaskedDenseInput: grad_x = m ? 0 : s * grad (an exact zero at missing entries). With
indicator, grad has 2K columns and its indicator half (constant in x) is not read.
)doc");

REGISTER_OP("Safeops>MaskedDenseOutput")
    .Input("matmul: T")
    .Input("bias: T")
    .Output("output: T")
    .Output("pre_activation: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr(kActivations)
    .SetShapeFn([](InferenceContext* c) { return epilogue_shapes(c, 1, nullptr); })
    .Doc(R"doc(
masked_dense's epilogue on the CPU path: output = act(matmul + bias) over the last axis, in the
accumulation type, with the activations of the fused op (a NaN pre-activation stays NaN).
pre_activation is matmul + bias for the activations that save it (see MaskedDense), otherwise an
empty vector.
)doc");

REGISTER_OP("Safeops>MaskedDenseOutputGrad")
    .Input("saved: T")
    .Input("grad: T")
    .Output("grad_matmul: T")
    .Output("grad_bias: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr(kActivations)
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle g;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(1), 1, &g));
      c->set_output(0, g);
      c->set_output(1, c->Vector(c->Dim(g, -1)));
      return ok_status();
    })
    .Doc(R"doc(
Gradient of MaskedDenseOutput in one pass: grad_matmul = grad * act'(.) from `saved` (as for
MaskedDenseGrad), grad_bias = its sum over every axis but the last.
)doc");

REGISTER_OP("Safeops>MaskedDenseIndicatorOutput")
    .Input("matmul: T")
    .Input("x: T")
    .Input("indicator_kernel: T")
    .Input("bias: T")
    .Output("output: T")
    .Output("pre_activation: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr(kActivations)
    .Attr("missing: {'nan', 'nonfinite'} = 'nan'")
    .SetShapeFn([](InferenceContext* c) {
      DimensionHandle n, k;
      TF_RETURN_IF_ERROR(epilogue_shapes(c, 3, &n));
      ShapeHandle x, u, unused;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(1), 1, &x));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &u));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(x, -1), c->Dim(u, 0), &k));
      TF_RETURN_IF_ERROR(c->Merge(c->Dim(u, 1), n, &n));
      ShapeHandle x_leading, mm_leading;
      TF_RETURN_IF_ERROR(c->Subshape(x, 0, -1, &x_leading));
      TF_RETURN_IF_ERROR(c->Subshape(c->input(0), 0, -1, &mm_leading));
      return c->Merge(x_leading, mm_leading, &unused);
    })
    .Doc(R"doc(
masked_dense's epilogue on the CPU path with indicator weights, after MatMul(xs, kernel): with
m = missing(x), output = act(matmul + m @ indicator_kernel + bias) over the last axis, in the
accumulation type, in one pass (the rows of indicator_kernel where x is missing are added).
pre_activation as for MaskedDenseOutput.
)doc");

REGISTER_OP("Safeops>MaskedDenseIndicatorOutputGrad")
    .Input("x: T")
    .Input("saved: T")
    .Input("grad: T")
    .Output("grad_matmul: T")
    .Output("grad_bias: T")
    .Output("grad_indicator_kernel: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr(kActivations)
    .Attr("missing: {'nan', 'nonfinite'} = 'nan'")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x, g;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &x));
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(2), 1, &g));
      c->set_output(0, g);
      c->set_output(1, c->Vector(c->Dim(g, -1)));
      c->set_output(2, c->Matrix(c->Dim(x, -1), c->Dim(g, -1)));
      return ok_status();
    })
    .Doc(R"doc(
Gradient of MaskedDenseIndicatorOutput in one pass: grad_matmul = dz = grad * act'(.) from
`saved` (as for MaskedDenseGrad), grad_bias = sum of dz over every axis but the last,
grad_indicator_kernel = m^T @ dz (fixed row chunks summed in a fixed order).
)doc");

}  // namespace tf
}  // namespace safeops
