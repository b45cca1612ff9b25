// Op registrations of the select family: Safeops>SafeWhere, Safeops>FillMissing and their
// fused gradients. Shape functions give static shapes wherever TensorFlow can know them.
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tf_compat.h"

namespace safeops {
namespace tf {

using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

namespace {

Status broadcast3(InferenceContext* c, int i0, int i1, int i2, ShapeHandle* out) {
  ShapeHandle s;
  TF_RETURN_IF_ERROR(::tensorflow::shape_inference::BroadcastBinaryOpOutputShapeFnHelper(
      c, c->input(i0), c->input(i1), true, &s));
  return ::tensorflow::shape_inference::BroadcastBinaryOpOutputShapeFnHelper(c, s, c->input(i2),
                                                                             true, out);
}

}  // namespace

REGISTER_OP("Safeops>SafeWhere")
    .Input("condition: bool")
    .Input("x: T")
    .Input("y: T")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle out;
      TF_RETURN_IF_ERROR(broadcast3(c, 0, 1, 2, &out));
      c->set_output(0, out);
      return ok_status();
    })
    .Doc(R"doc(
output = condition ? x : y with numpy broadcasting of all three (tf.where's forward).
)doc");

REGISTER_OP("Safeops>SafeWhereGrad")
    .Input("condition: bool")
    .Input("x: T")
    .Input("y: T")
    .Input("grad: T")
    .Output("grad_x: T")
    .Output("grad_y: T")
    .Attr("T: {half, bfloat16, float, double}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      return ok_status();
    })
    .Doc(R"doc(
Fused gradient of SafeWhere: grad_x = condition ? grad : 0 and grad_y = condition ? 0 : grad,
each summed over the dimensions its input was broadcast along. The zeros are selected, so they
are exact even where grad is NaN or Inf. x and y are read for their shapes only.
)doc");

REGISTER_OP("Safeops>FillMissing")
    .Input("x: T")
    .Input("value: T")
    .Output("output: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("missing: {'nan', 'nonfinite'} = 'nan'")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle merged;
      TF_RETURN_IF_ERROR(::tensorflow::shape_inference::BroadcastBinaryOpOutputShapeFnHelper(
          c, c->input(0), c->input(1), true, &merged));
      c->set_output(0, c->input(0));
      return ok_status();
    })
    .Doc(R"doc(
output = missing(x) ? value : x, value broadcast to x's shape; missing is "nan" (NaN) or
"nonfinite" (NaN and +-Inf). The mask is computed inline; no bool tensor is formed.
)doc");

REGISTER_OP("Safeops>FillMissingGrad")
    .Input("x: T")
    .Input("value: T")
    .Input("grad: T")
    .Output("grad_x: T")
    .Output("grad_value: T")
    .Attr("T: {half, bfloat16, float, double}")
    .Attr("missing: {'nan', 'nonfinite'} = 'nan'")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      return ok_status();
    })
    .Doc(R"doc(
Fused gradient of FillMissing: grad_x = missing(x) ? 0 : grad (an exact zero at missing
entries) and grad_value = the sum of grad over the missing entries, reduced to value's shape.
)doc");

}  // namespace tf
}  // namespace safeops
