// seqmask's CPU LSTM layer, forward and backward, one TensorFlow op each.
//
// TensorFlow's BlockLSTM ops do the same job; this kernel is faster on seqmask's shapes
// (bench/bench.py, BENCHMARKS.md) because:
//   * the input projection X W_x + b is one matmul over every step of a batch slice,
//     and so are the backward's dW_x = X^T dG, db and dW_h (below), where BlockLSTMGrad
//     accumulates dW with a thin matmul at every step; only h_{t-1} W_h and
//     dG_t [W_h; W_x]^T stay in the time loop;
//   * a decoder whose input is the same at every step (`repeat`) passes x with one step
//     and `time`: its projection is done once per sequence instead of at every step;
//   * `input_gradient = false` (the first layer, which reads the model's input values)
//     leaves dX out of the loop's matmul;
//   * the batch is cut into `shards` slices, each run from start to end on one of
//     TensorFlow's inter-op threads, so the small matmuls of a step never wait for one
//     another;
//   * it reads and writes (batch, time, features) tensors as they are: no transposes.
//
// Per step t (gate order i, f, g, o, as Keras's LSTM), G_t = x_t W_x + b + h_{t-1} W_h:
//   i, f, o = sigmoid(G_t[i, f, o]);  g = tanh(G_t[g])
//   c_t = i * g + f * c_{t-1};  h_t = o * tanh(c_t);  h_{-1} = c_{-1} = 0
// Backward, from t = T - 1 down, with dh_t = dH_t + dG_{t+1} W_h^T and dc carried back:
//   do = dh_t tanh(c_t) o (1 - o);  dc_t = dc_{t+1} f_{t+1} + dh_t o (1 - tanh(c_t)^2)
//   di = dc_t g i (1 - i);  dg = dc_t i (1 - g^2);  df = dc_t c_{t-1} f (1 - f)
// and dW_h = sum_t h_{t-1}^T dG_t.
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "Eigen/Core"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

using Index = Eigen::Index;
using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Stride = Eigen::OuterStride<>;
// Row-major views; a strided one is one step of a (batch, time, n) tensor: (batch, n).
using View = Eigen::Map<Matrix, 0, Stride>;
using ConstView = Eigen::Map<const Matrix, 0, Stride>;
// (batch, units) steps of a (batch, time, n) tensor, as arrays.
using GateView = Eigen::Map<Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Stride>;
using ConstGateView =
    Eigen::Map<const Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Stride>;
// One row of `units` values, contiguous.
using Row = Eigen::Map<Eigen::Array<float, 1, Eigen::Dynamic>>;
using ConstRow = Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>>;

// sigmoid(x) = (1 + tanh(x / 2)) / 2: Eigen vectorizes tanh.
template <typename T>
auto Sigmoid(const T& x) {
  return 0.5f * (0.5f * x).tanh() + 0.5f;
}

// Runs work(shard, begin, end) over `shards` slices of [0, n) and returns when all are
// done. Slices other than the first are offered to TensorFlow's inter-op threads (those
// otherwise spin idle beside this op); the calling thread runs the first and then any
// slice no other thread has taken, so it never waits on a thread that is busy elsewhere.
template <typename F>
void ForShards(OpKernelContext* ctx, Index n, Index shards, const F& work) {
  shards = std::max<Index>(1, std::min(shards, n));
  struct Shared {
    std::atomic<Index> next{1};
    Index running = 0;  // slices taken by other threads and not finished, under `mu`
    std::mutex mu;
    std::condition_variable finished;
  };
  auto shared = std::make_shared<Shared>();
  // A helper counts itself as running before it claims a slice, so the caller, which
  // waits for running == 0 after the last slice is claimed, never returns under it.
  auto help = [shared, n, shards, &work] {
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      ++shared->running;
    }
    const Index s = shared->next.fetch_add(1);
    if (s < shards) work(s, n * s / shards, n * (s + 1) / shards);
    std::lock_guard<std::mutex> lock(shared->mu);
    if (--shared->running == 0) shared->finished.notify_all();
  };
  auto* runner = ctx->runner();
  for (Index s = 1; s < shards && runner != nullptr; ++s) {
    // May run after this call has returned, if the pool is slow: it then finds no slice
    // left and touches nothing but `shared`.
    (*runner)(help);
  }
  work(0, 0, n / shards);
  for (Index s = shared->next.fetch_add(1); s < shards; s = shared->next.fetch_add(1)) {
    work(s, n * s / shards, n * (s + 1) / shards);  // not taken by any other thread yet
  }
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->finished.wait(lock, [&] { return shared->running == 0; });
}

struct Dims {
  Index batch, time, x_time, features, units, width;  // width = 4 units
};

absl::Status CheckInputs(const Tensor& x, const Tensor& wx, const Tensor& wh, int64_t time, Dims* d) {
  if (x.dims() != 3 || wx.dims() != 2 || wh.dims() != 2) {
    return InvalidArgument("x must be (batch, time, features), wx and wh matrices");
  }
  d->batch = x.dim_size(0);
  d->x_time = x.dim_size(1);
  d->features = x.dim_size(2);
  d->units = wh.dim_size(0);
  d->width = 4 * d->units;
  d->time = time;
  if (wx.dim_size(0) != d->features || wx.dim_size(1) != d->width || wh.dim_size(1) != d->width) {
    return InvalidArgument("wx must be (features, 4 units) and wh (units, 4 units)");
  }
  if (time < 0 || (d->x_time != 1 && d->x_time != time)) {
    return InvalidArgument("x must have 1 step or `time` steps");
  }
  return absl::OkStatus();
}

absl::Status LstmShape(InferenceContext* c) {
  ShapeHandle x, wh;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &wh));
  DimensionHandle time;
  TF_RETURN_IF_ERROR(c->MakeDimForScalarInput(4, &time));
  ShapeHandle state = c->MakeShape({c->Dim(x, 0), time, c->Dim(wh, 0)});
  c->set_output(0, state);
  c->set_output(1, state);
  c->set_output(2, c->MakeShape({c->Dim(x, 0), time, c->Dim(wh, 1)}));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("SeqmaskLstm")
    .Input("x: float")       // (batch, time or 1, features); 1: the same input at every step
    .Input("wx: float")      // (features, 4 units)
    .Input("wh: float")      // (units, 4 units)
    .Input("b: float")       // (4 units,)
    .Input("time: int32")    // scalar: steps to run
    .Attr("shards: int = 1")
    .Output("h: float")      // (batch, time, units)
    .Output("c: float")      // (batch, time, units): kept for the backward pass
    .Output("gates: float")  // (batch, time, 4 units), after the activations: kept too
    .SetShapeFn(LstmShape);

REGISTER_OP("SeqmaskLstmGrad")
    .Input("x: float")
    .Input("wx: float")
    .Input("wh: float")
    .Input("h: float")
    .Input("c: float")
    .Input("gates: float")
    .Input("dh: float")      // (batch, time, units): the loss's gradient w.r.t. h
    .Attr("shards: int = 1")
    .Attr("input_gradient: bool = true")  // false: dx is left zero (x is the model's input)
    .Output("dx: float")
    .Output("dwx: float")
    .Output("dwh: float")
    .Output("db: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(2));
      c->set_output(3, c->Vector(c->Dim(c->input(2), 1)));
      return absl::OkStatus();
    });

namespace {

class SeqmaskLstmOp : public OpKernel {
 public:
  explicit SeqmaskLstmOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("shards", &shards_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& wx_in = ctx->input(1);
    const Tensor& wh_in = ctx->input(2);
    const Tensor& b_in = ctx->input(3);
    Dims d;
    OP_REQUIRES_OK(ctx, CheckInputs(x, wx_in, wh_in, ctx->input(4).scalar<int32_t>()(), &d));
    OP_REQUIRES(ctx, b_in.dims() == 1 && b_in.dim_size(0) == d.width,
                InvalidArgument("b must be (4 units,)"));
    const Index B = d.batch, T = d.time, D = d.features, U = d.units, W = d.width;
    Tensor *h_out, *c_out, *g_out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({B, T, U}), &h_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, U}), &c_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, T, W}), &g_out));
    if (B == 0 || T == 0) return;
    const float* X = x.flat<float>().data();
    float* H = h_out->flat<float>().data();
    float* C = c_out->flat<float>().data();
    float* G = g_out->flat<float>().data();
    const ConstView wx(wx_in.flat<float>().data(), D, W, Stride(W));
    const ConstView wh(wh_in.flat<float>().data(), U, W, Stride(W));
    const auto bias = Eigen::Map<const Eigen::RowVectorXf>(b_in.flat<float>().data(), W);

    ForShards(ctx, B, shards_, [&](Index, Index b0, Index b1) {
      const Index n = b1 - b0;
      // The input projection for every step of the slice at once: G = X W_x + b.
      View g_all(G + b0 * T * W, n * T, W, Stride(W));  // (n * time, 4 units)
      if (d.x_time == T) {
        g_all.noalias() = ConstView(X + b0 * T * D, n * T, D, Stride(D)) * wx;
        g_all.rowwise() += bias;
      } else {
        const Matrix p = (ConstView(X + b0 * D, n, D, Stride(D)) * wx).rowwise() + bias;  // (n, 4 units)
        for (Index t = 0; t < T; ++t) View(G + (b0 * T + t) * W, n, W, Stride(T * W)) = p;
      }
      for (Index t = 0; t < T; ++t) {
        float* g = G + (b0 * T + t) * W;  // step t of rows b0.., row stride T * W
        if (t > 0) {
          View(g, n, W, Stride(T * W)).noalias() +=
              ConstView(H + (b0 * T + t - 1) * U, n, U, Stride(T * U)) * wh;
        }
        // The whole slice's step at once (measured faster here than row by row, and
        // slower than row by row in the backward pass below).
        const Stride gs(T * W), ss(T * U);
        GateView i(g, n, U, gs), f(g + U, n, U, gs), gg(g + 2 * U, n, U, gs), o(g + 3 * U, n, U, gs);
        i = Sigmoid(i);
        f = Sigmoid(f);
        gg = gg.tanh();
        o = Sigmoid(o);
        const Index at = b0 * T + t;
        GateView c(C + at * U, n, U, ss);
        if (t > 0) {
          c = i * gg + f * ConstGateView(C + (at - 1) * U, n, U, ss);
        } else {
          c = i * gg;
        }
        GateView(H + at * U, n, U, ss) = o * c.tanh();
      }
    });
  }

 private:
  int shards_;
};

class SeqmaskLstmGradOp : public OpKernel {
 public:
  explicit SeqmaskLstmGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("shards", &shards_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("input_gradient", &input_gradient_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& wx_in = ctx->input(1);
    const Tensor& wh_in = ctx->input(2);
    const Tensor& h_in = ctx->input(3);
    const Tensor& c_in = ctx->input(4);
    const Tensor& g_in = ctx->input(5);
    const Tensor& dh_in = ctx->input(6);
    Dims d;
    OP_REQUIRES(ctx, h_in.dims() == 3, InvalidArgument("h must be (batch, time, units)"));
    OP_REQUIRES_OK(ctx, CheckInputs(x, wx_in, wh_in, h_in.dim_size(1), &d));
    const Index B = d.batch, T = d.time, D = d.features, U = d.units, W = d.width;
    const TensorShape state({B, T, U});
    OP_REQUIRES(ctx, h_in.shape() == state && c_in.shape() == state && dh_in.shape() == state &&
                         g_in.shape() == TensorShape({B, T, W}),
                InvalidArgument("h, c, gates and dh must match the forward pass"));

    Tensor *dx_out, *dwx_out, *dwh_out, *db_out, dg_tmp;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, wx_in.shape(), &dwx_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, wh_in.shape(), &dwh_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({W}), &db_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT, TensorShape({B, T, W}), &dg_tmp));
    View dwx_all(dwx_out->flat<float>().data(), D, W, Stride(W));
    View dwh_all(dwh_out->flat<float>().data(), U, W, Stride(W));
    auto db_all = Eigen::Map<Eigen::RowVectorXf>(db_out->flat<float>().data(), W);
    dwx_all.setZero();
    dwh_all.setZero();
    db_all.setZero();
    if (B == 0 || T == 0 || !input_gradient_) dx_out->flat<float>().setZero();
    if (B == 0 || T == 0) return;
    const float* X = x.flat<float>().data();
    const float* H = h_in.flat<float>().data();
    const float* C = c_in.flat<float>().data();
    const float* G = g_in.flat<float>().data();
    const float* dH = dh_in.flat<float>().data();
    float* dX = dx_out->flat<float>().data();
    float* dG = dg_tmp.flat<float>().data();  // (batch, time, 4 units)
    const ConstView wx(wx_in.flat<float>().data(), D, W, Stride(W));
    const ConstView wh(wh_in.flat<float>().data(), U, W, Stride(W));

    const Index shards = std::max<Index>(1, std::min<Index>(shards_, B));
    std::vector<Matrix> dwx(shards), dwh(shards);
    std::vector<Eigen::RowVectorXf> db(shards);
    ForShards(ctx, B, shards, [&](Index s, Index b0, Index b1) {
      const Index n = b1 - b0;
      // Carried back: dh through W_h with the input gradient beside it, [dh_{t-1}, dx_t] =
      // dG_t [W_h; W_x]^T (one matmul, as BlockLSTM), and dc through the forget gate.
      const bool dx_in_loop = d.x_time == T && input_gradient_;
      Matrix w_t(W, dx_in_loop ? U + D : U);  // (4 units, units [+ features])
      w_t.leftCols(U) = wh.transpose();
      if (dx_in_loop) w_t.rightCols(D) = wx.transpose();
      Matrix back = Matrix::Zero(n, w_t.cols());  // (n, units [+ features])
      Matrix dc = Matrix::Zero(n, U);
      for (Index t = T - 1; t >= 0; --t) {
        for (Index b = 0; b < n; ++b) {
          const Index at = (b0 + b) * T + t;
          const float* gb = G + at * W;
          float* dgb = dG + at * W;
          ConstRow i(gb, U), f(gb + U, U), gg(gb + 2 * U, U), o(gb + 3 * U, U);
          Row di(dgb, U), df(dgb + U, U), dgg(dgb + 2 * U, U), d_o(dgb + 3 * U, U);
          Row dcb(dc.data() + b * U, U);
          const Eigen::Array<float, 1, Eigen::Dynamic> dh = Row(back.data() + b * back.cols(), U) + ConstRow(dH + at * U, U);
          const Eigen::Array<float, 1, Eigen::Dynamic> tc = ConstRow(C + at * U, U).tanh();
          d_o = dh * tc * o * (1.0f - o);
          dcb += dh * o * (1.0f - tc * tc);
          di = dcb * gg * i * (1.0f - i);
          dgg = dcb * i * (1.0f - gg * gg);
          if (t > 0) {
            df = dcb * ConstRow(C + (at - 1) * U, U) * f * (1.0f - f);
            dcb *= f;
          } else {
            df.setZero();
          }
        }
        const ConstView dg_t(dG + (b0 * T + t) * W, n, W, Stride(T * W));  // (n, 4 units)
        if (dx_in_loop) {
          back.noalias() = dg_t * w_t;
          View(dX + (b0 * T + t) * D, n, D, Stride(T * D)) = back.rightCols(D);
        } else if (t > 0) {
          back.noalias() = dg_t * w_t;
        }
      }
      // dW_h = sum over b, t >= 1 of h[b, t-1]^T dG[b, t]. In the slice's (n * time) rows,
      // pairing row r of H with row r + 1 of dG gives exactly those pairs, plus
      // h[b, T-1] with dG[b+1, 0] at each sequence boundary, which are taken out again.
      const Index rows = n * T;
      dwh[s].noalias() = ConstView(H + b0 * T * U, rows - 1, U, Stride(U)).transpose() *
                         ConstView(dG + (b0 * T + 1) * W, rows - 1, W, Stride(W));
      if (n > 1) {
        dwh[s].noalias() -= ConstView(H + (b0 * T + T - 1) * U, n - 1, U, Stride(T * U)).transpose() *
                            ConstView(dG + (b0 + 1) * T * W, n - 1, W, Stride(T * W));
      }
      const ConstView dg_all(dG + b0 * T * W, rows, W, Stride(W));
      if (d.x_time == T) {
        dwx[s].noalias() = ConstView(X + b0 * T * D, rows, D, Stride(D)).transpose() * dg_all;
        db[s] = dg_all.colwise().sum();
      } else {
        // x was the same at every step: its projection's gradient is the sum over steps.
        Matrix dp(n, W);
        for (Index b = 0; b < n; ++b) dp.row(b) = ConstView(dG + (b0 + b) * T * W, T, W, Stride(W)).colwise().sum();
        if (input_gradient_) View(dX + b0 * D, n, D, Stride(D)).noalias() = dp * wx.transpose();
        dwx[s].noalias() = ConstView(X + b0 * D, n, D, Stride(D)).transpose() * dp;
        db[s] = dp.colwise().sum();
      }
    });
    for (Index s = 0; s < shards; ++s) {
      dwx_all += dwx[s];
      dwh_all += dwh[s];
      db_all += db[s];
    }
  }

 private:
  int shards_;
  bool input_gradient_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("SeqmaskLstm").Device(tensorflow::DEVICE_CPU), SeqmaskLstmOp);
REGISTER_KERNEL_BUILDER(Name("SeqmaskLstmGrad").Device(tensorflow::DEVICE_CPU), SeqmaskLstmGradOp);
