// Bindings of the select family (safe_where and fill_missing kernels).
#include <stdexcept>

#include "native_common.h"
#include "select_cpu.h"
#include "select_plan.h"
#if SAFEOPS_WITH_CUDA
#include "select.h"
#endif

namespace safeops {
namespace native {
namespace {

SelectPlan plan_or_throw(const Shape& c, const Shape& a, const Shape& b, Shape* out) {
  SelectPlan plan;
  Shape out_shape;
  std::string err;
  if (!make_select_plan(c, a, b, &plan, &out_shape, &err)) throw py::value_error("safeops: " + err);
  if (out) *out = out_shape;
  return plan;
}

SelectPlan fill_plan_or_throw(const Shape& x, const Shape& v) {
  SelectPlan plan;
  std::string err;
  if (!make_fill_plan(x, v, &plan, &err)) throw py::value_error("safeops: " + err);
  return plan;
}

// Every gradient kernel reads grad with the output's shape; a smaller grad is refused here.
void check_grad_shape(const Shape& got, const Shape& want) {
  if (got != want) {
    throw py::value_error("safeops: grad has shape " + shape_str(got) + ", expected " +
                          shape_str(want));
  }
}

// ---- CPU ------------------------------------------------------------------------------------

py::array where_cpu(const py::object& cond_o, const py::object& a_o, const py::object& b_o) {
  py::array c = bool_array(cond_o, "condition");
  py::array a = float_array(a_o, "x"), b = float_array(b_o, "y");
  same_dtype(a, b, "x", "y");
  Shape out_shape;
  const SelectPlan plan = plan_or_throw(shape_of(c), shape_of(a), shape_of(b), &out_shape);
  py::array out = empty_like_dtype(a, out_shape);
  const DType dt = parse_dtype(dtype_of(a));
  {
    py::gil_scoped_release nogil;
    select_forward_cpu(dt, plan, static_cast<const std::uint8_t*>(c.data()), a.data(), b.data(),
                       out.mutable_data(), ThreadRunner());
  }
  return out;
}

py::tuple where_grad_cpu(const py::object& cond_o, const Shape& a_shape, const Shape& b_shape,
                         const py::object& g_o) {
  py::array c = bool_array(cond_o, "condition");
  py::array g = float_array(g_o, "grad");
  Shape out_shape;
  const SelectPlan plan = plan_or_throw(shape_of(c), a_shape, b_shape, &out_shape);
  check_grad_shape(shape_of(g), out_shape);
  py::array ga = empty_like_dtype(g, a_shape), gb = empty_like_dtype(g, b_shape);
  const DType dt = parse_dtype(dtype_of(g));
  {
    py::gil_scoped_release nogil;
    select_backward_cpu(dt, plan, static_cast<const std::uint8_t*>(c.data()), g.data(),
                        ga.mutable_data(), gb.mutable_data(), ThreadRunner());
  }
  return py::make_tuple(ga, gb);
}

py::array fill_missing_cpu(const py::object& x_o, const py::object& v_o,
                           const std::string& missing) {
  py::array x = float_array(x_o, "x"), v = float_array(v_o, "value");
  same_dtype(x, v, "x", "value");
  const SelectPlan plan = fill_plan_or_throw(shape_of(x), shape_of(v));
  const Missing m = parse_missing_or_throw(missing);
  py::array out = empty_like_dtype(x, shape_of(x));
  const DType dt = parse_dtype(dtype_of(x));
  {
    py::gil_scoped_release nogil;
    fill_missing_forward_cpu(dt, m, plan, x.data(), v.data(), out.mutable_data(), ThreadRunner());
  }
  return out;
}

py::tuple fill_missing_grad_cpu(const py::object& x_o, const Shape& v_shape, const py::object& g_o,
                                const std::string& missing) {
  py::array x = float_array(x_o, "x"), g = float_array(g_o, "grad");
  same_dtype(x, g, "x", "grad");
  const SelectPlan plan = fill_plan_or_throw(shape_of(x), v_shape);
  check_grad_shape(shape_of(g), shape_of(x));
  const Missing m = parse_missing_or_throw(missing);
  py::array gx = empty_like_dtype(x, shape_of(x)), gv = empty_like_dtype(x, v_shape);
  const DType dt = parse_dtype(dtype_of(x));
  {
    py::gil_scoped_release nogil;
    fill_missing_backward_cpu(dt, m, plan, x.data(), g.data(), gv.mutable_data(), gx.mutable_data(),
                              ThreadRunner());
  }
  return py::make_tuple(gx, gv);
}

// ---- CUDA -----------------------------------------------------------------------------------
#if SAFEOPS_WITH_CUDA

void cuda_where(std::uintptr_t c, const Shape& cs, std::uintptr_t a, const Shape& as,
                std::uintptr_t b, const Shape& bs, std::uintptr_t out, const std::string& dtype,
                std::uintptr_t stream) {
  const SelectPlan plan = plan_or_throw(cs, as, bs, nullptr);
  check_cuda(
      cuda::select_forward(parse_dtype(dtype), plan, ptr<const std::uint8_t>(c), ptr<const void>(a),
                           ptr<const void>(b), ptr<void>(out), stream_of(stream)),
      "safeops.where");
}

std::size_t cuda_where_grad_workspace(const Shape& cs, const Shape& as, const Shape& bs,
                                      const std::string& dtype) {
  return cuda::select_backward_workspace(parse_dtype(dtype), plan_or_throw(cs, as, bs, nullptr),
                                         true, true);
}

void cuda_where_grad(std::uintptr_t c, const Shape& cs, const Shape& as, const Shape& bs,
                     std::uintptr_t g, const Shape& gs, std::uintptr_t ga, std::uintptr_t gb,
                     std::uintptr_t workspace, const std::string& dtype, std::uintptr_t stream) {
  Shape out_shape;
  const SelectPlan plan = plan_or_throw(cs, as, bs, &out_shape);
  check_grad_shape(gs, out_shape);
  check_cuda(cuda::select_backward(parse_dtype(dtype), plan, ptr<const std::uint8_t>(c),
                                   ptr<const void>(g), ptr<void>(ga), ptr<void>(gb),
                                   ptr<void>(workspace), stream_of(stream)),
             "safeops.where_grad");
}

void cuda_fill_missing(std::uintptr_t x, const Shape& xs, std::uintptr_t v, const Shape& vs,
                       std::uintptr_t out, const std::string& missing, const std::string& dtype,
                       std::uintptr_t stream) {
  const SelectPlan plan = fill_plan_or_throw(xs, vs);
  check_cuda(cuda::fill_missing_forward(parse_dtype(dtype), parse_missing_or_throw(missing), plan,
                                        ptr<const void>(x), ptr<const void>(v), ptr<void>(out),
                                        stream_of(stream)),
             "safeops.fill_missing");
}

std::size_t cuda_fill_missing_grad_workspace(const Shape& xs, const Shape& vs,
                                             const std::string& dtype) {
  return cuda::select_backward_workspace(parse_dtype(dtype), fill_plan_or_throw(xs, vs), true,
                                         true);
}

void cuda_fill_missing_grad(std::uintptr_t x, const Shape& xs, const Shape& vs, std::uintptr_t g,
                            const Shape& gs, std::uintptr_t gx, std::uintptr_t gv,
                            std::uintptr_t workspace, const std::string& missing,
                            const std::string& dtype, std::uintptr_t stream) {
  const SelectPlan plan = fill_plan_or_throw(xs, vs);
  check_grad_shape(gs, xs);
  check_cuda(cuda::fill_missing_backward(parse_dtype(dtype), parse_missing_or_throw(missing), plan,
                                         ptr<const void>(x), ptr<const void>(g), ptr<void>(gv),
                                         ptr<void>(gx), ptr<void>(workspace), stream_of(stream)),
             "safeops.fill_missing_grad");
}
#endif

}  // namespace

void bind_select(py::module_& m) {
  m.def("broadcast_shape", [](const Shape& c, const Shape& a, const Shape& b) {
    Shape out;
    plan_or_throw(c, a, b, &out);
    return out;
  });
  m.def("where", &where_cpu, py::arg("condition"), py::arg("x"), py::arg("y"));
  m.def("where_grad", &where_grad_cpu, py::arg("condition"), py::arg("x_shape"), py::arg("y_shape"),
        py::arg("grad"));
  m.def("fill_missing", &fill_missing_cpu, py::arg("x"), py::arg("value"),
        py::arg("missing") = "nan");
  m.def("fill_missing_grad", &fill_missing_grad_cpu, py::arg("x"), py::arg("value_shape"),
        py::arg("grad"), py::arg("missing") = "nan");
#if SAFEOPS_WITH_CUDA
  m.def("cuda_where", &cuda_where);
  m.def("cuda_where_grad_workspace", &cuda_where_grad_workspace);
  m.def("cuda_where_grad", &cuda_where_grad);
  m.def("cuda_fill_missing", &cuda_fill_missing);
  m.def("cuda_fill_missing_grad_workspace", &cuda_fill_missing_grad_workspace);
  m.def("cuda_fill_missing_grad", &cuda_fill_missing_grad);
#endif
}

}  // namespace native
}  // namespace safeops
