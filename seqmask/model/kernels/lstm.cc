// seqmask's CPU LSTM layer, forward and backward, one TensorFlow op each.
//
// TensorFlow's BlockLSTM ops do the same job; this kernel is faster on seqmask's shapes
// (bench/bench.py, BENCHMARKS.md) because:
//   * the forward keeps the rows [x_t, h_{t-1}] each step's matmul read, so the backward
//     gets [dW_x; dW_h] = sum_t [x_t, h_{t-1}]^T dG_t as one matmul over every step of
//     a batch slice (BlockLSTMGrad accumulates dW with a thin matmul at every step);
//   * a decoder whose input is the same at every step (`repeat`) passes x with one step
//     and `time`: x W_x is computed once per sequence instead of at every step, and the
//     step's matmul is h_{t-1} W_h alone;
//   * `step_bias = true`: b is (time, 4 units), a bias of its own at every step, the same
//     for every row. A `repeat` decoder that also reads features of the step index alone
//     (seqmask's step positions) passes their projection as this bias, so its step is
//     still h_{t-1} W_h alone; the gradient of b is then per step, summed over rows;
//   * `input_gradient = false` (the first layer, which reads the model's input values)
//     leaves dX out of the backward step's matmul;
//   * the gate arithmetic of a row is one vectorized loop;
//   * each row runs its real steps only (t < its length; post padding), and the
//     encoder's last layer returns the output at t = L - 1 alone (`last_only`), so no
//     (batch, time, units) output is written, gathered from and back-propagated through;
//   * the batch is cut into `shards` slices, each run from start to end on one of
//     TensorFlow's inter-op threads, so the small matmuls of a step never wait for one
//     another; each slice keeps its tensors time-major, so a step's rows are contiguous;
//   * it reads and writes (batch, time, features) tensors as they are: no transposes.
//
// Per step t (gate order i, f, g, o, as Keras's LSTM), G_t = x_t W_x + b + h_{t-1} W_h:
//   i, f, o = sigmoid(G_t[i, f, o]);  g = tanh(G_t[g])
//   c_t = i * g + f * c_{t-1};  h_t = o * tanh(c_t);  h_{-1} = c_{-1} = 0
// for t < L (the row's length); h_t = 0 for t >= L.
// Backward, from t = T - 1 down, with dh_t = dH_t + dG_{t+1} W_h^T and dc carried back:
//   do = dh_t tanh(c_t) o (1 - o);  dc_t = dc_{t+1} f_{t+1} + dh_t o (1 - tanh(c_t)^2)
//   di = dc_t g i (1 - i);  dg = dc_t i (1 - g^2);  df = dc_t c_{t-1} f (1 - f)
// and dW_h = sum_t h_{t-1}^T dG_t.
#include <algorithm>
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

// tanh(x) for float as a 13/6 rational approximation on [-7.9053, 7.9053], where tanh
// reaches +-1 in float (Eigen's former float tanh, still its MSA code path; a few ulp).
// Written as plain arithmetic so the compiler vectorizes the loops that call it.
inline float Tanh(float x) {
  x = std::min(7.90531110763549805f, std::max(-7.90531110763549805f, x));
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}

// sigmoid(x) = (1 + tanh(x / 2)) / 2
inline float Sigmoid(float x) { return 0.5f * Tanh(0.5f * x) + 0.5f; }

// One row of a forward step. g: (4 units) pre-activations in (bias still to add), gates
// i, f, g, o out; writes c_t and h_t. Separate pointers that never overlap (__restrict),
// so the compiler vectorizes the loop.
inline void GatesForward(float* __restrict g, const float* __restrict bias, const float* __restrict c_prev,
                         float* __restrict c, float* __restrict h, const Index units) {
  for (Index k = 0; k < units; ++k) {
    const float i = Sigmoid(g[k] + bias[k]), f = Sigmoid(g[units + k] + bias[units + k]);
    const float gg = Tanh(g[2 * units + k] + bias[2 * units + k]);
    const float o = Sigmoid(g[3 * units + k] + bias[3 * units + k]);
    g[k] = i;
    g[units + k] = f;
    g[2 * units + k] = gg;
    g[3 * units + k] = o;
    const float c_t = i * gg + f * c_prev[k];
    c[k] = c_t;
    h[k] = o * Tanh(c_t);
  }
}

// One row of a backward step (the formulas at the top). dh = dh_next + dh_out; dc holds
// dc_{t+1} f_{t+1} on entry and dc_t f_t on return; dg receives dG_t.
inline void GatesBackward(const float* __restrict g, const float* __restrict c,
                          const float* __restrict c_prev, const float* __restrict dh_next,
                          const float* __restrict dh_out, float* __restrict dc,
                          float* __restrict dg, const Index units) {
  for (Index k = 0; k < units; ++k) {
    const float i = g[k], f = g[units + k], gg = g[2 * units + k], o = g[3 * units + k];
    const float dh = dh_next[k] + dh_out[k];
    const float tc = Tanh(c[k]);
    const float dc_t = dc[k] + dh * o * (1.0f - tc * tc);
    dg[k] = dc_t * gg * i * (1.0f - i);
    dg[units + k] = dc_t * c_prev[k] * f * (1.0f - f);
    dg[2 * units + k] = dc_t * i * (1.0f - gg * gg);
    dg[3 * units + k] = dh * tc * o * (1.0f - o);
    dc[k] = dc_t * f;
  }
}

// Runs work(s) for s in [0, shards) and returns when all are done. Slices other than the
// first are offered to TensorFlow's inter-op threads (those otherwise spin idle beside
// this op); the calling thread runs slice 0 and then any slice no other thread has taken,
// so it never waits on a thread that is busy elsewhere.
template <typename F>
void ForShards(OpKernelContext* ctx, Index shards, const F& work) {
  struct Shared {
    std::atomic<Index> next{1};
    Index running = 0;  // slices taken by other threads and not finished, under `mu`
    std::mutex mu;
    std::condition_variable finished;
  };
  auto shared = std::make_shared<Shared>();
  // A helper counts itself as running before it claims a slice, so the caller, which
  // waits for running == 0 after the last slice is claimed, never returns under it.
  auto help = [shared, shards, &work] {
    {
      std::lock_guard<std::mutex> lock(shared->mu);
      ++shared->running;
    }
    const Index s = shared->next.fetch_add(1);
    if (s < shards) work(s);
    std::lock_guard<std::mutex> lock(shared->mu);
    if (--shared->running == 0) shared->finished.notify_all();
  };
  auto* runner = ctx->runner();
  for (Index s = 1; s < shards && runner != nullptr; ++s) {
    // May run after this call has returned, if the pool is slow: it then finds no slice
    // left and touches nothing but `shared`.
    (*runner)(help);
  }
  work(0);
  for (Index s = shared->next.fetch_add(1); s < shards; s = shared->next.fetch_add(1)) {
    work(s);  // not taken by any other thread yet
  }
  std::unique_lock<std::mutex> lock(shared->mu);
  shared->finished.wait(lock, [&] { return shared->running == 0; });
}

struct Dims {
  Index batch, time, x_time, features, units, width;  // width = 4 units
};

absl::Status CheckInputs(const Tensor& x, const Tensor& wx, const Tensor& wh, const Tensor& lengths,
                         int64_t time, Dims* d) {
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
  if (lengths.shape() != TensorShape({d->batch})) return InvalidArgument("lengths must be (batch,)");
  return absl::OkStatus();
}

// Which rows run where. A row runs its real steps t < L only (its length, clipped to
// [0, time]): with post padding the steps after them cannot change its outputs at real
// steps (an LSTM is causal), so they are skipped, not computed and thrown away.
//
// The rows are sorted by length, longest first, and dealt round-robin to the slices (so
// the slices get equal work); slot j of a slice holds row `row[start[s] + j]`. The rows
// still running at step t are then a prefix of the slice's slots, `active` of them, and
// each step's block of c, gates and kept holds just those rows, one step after another:
// step t of slice s is the (active[t], k) block at row `offset[t]` (k values per row).
// All real steps of a slice are then one contiguous matrix (the weight gradients below).
struct Plan {
  Index shards;
  std::vector<Index> row, length, start, base;  // base[s]: the slice's first stored row

  Plan(const int32_t* lengths, Index batch, Index time, Index max_shards)
      : shards(std::max<Index>(1, std::min(max_shards, batch))), row(batch), length(batch),
        start(shards + 1, 0), base(shards + 1, 0) {
    std::vector<Index> order(batch);
    for (Index b = 0; b < batch; ++b) order[b] = b;
    auto clipped = [&](Index b) { return std::min<Index>(time, std::max<int32_t>(0, lengths[b])); };
    std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) { return clipped(a) > clipped(b); });
    for (Index s = 0; s < shards; ++s) start[s + 1] = start[s] + (batch - s + shards - 1) / shards;
    for (Index s = 0; s < shards; ++s) {
      for (Index j = 0; start[s] + j < start[s + 1]; ++j) {
        const Index r = order[s + j * shards];
        row[start[s] + j] = r;
        length[start[s] + j] = clipped(r);
      }
      base[s + 1] = base[s];
      for (Index j = start[s]; j < start[s + 1]; ++j) base[s + 1] += length[j];
    }
  }

  // One slice, as its work sees it: n rows, slot j being batch row rows[j] of length
  // length[j]; active[t], the rows running at step t, and offset[t], the first stored row
  // of step t (offset[time] = the end of the slice's rows).
  struct Slice {
    Index n;
    const Index *rows, *length;
    std::vector<Index> active, offset;

    // The slice's rows of a (batch, k) matrix, in slot order: (n, k).
    Matrix Gather(const float* m, Index k) const {
      Matrix out(n, k);
      for (Index r = 0; r < n; ++r) std::copy_n(m + rows[r] * k, k, out.data() + r * k);
      return out;
    }
  };

  Slice Of(Index s, Index time) const {
    Slice slice{start[s + 1] - start[s], row.data() + start[s], length.data() + start[s],
                std::vector<Index>(time, 0), std::vector<Index>(time + 1, base[s])};
    Index a = slice.n;
    for (Index t = 0; t < time; ++t) {
      while (a > 0 && slice.length[a - 1] <= t) --a;
      slice.active[t] = a;
      slice.offset[t + 1] = slice.offset[t] + a;
    }
    return slice;
  }
};

absl::Status LstmShape(InferenceContext* c) {
  ShapeHandle x, wh;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &wh));
  DimensionHandle time;
  TF_RETURN_IF_ERROR(c->MakeDimForScalarInput(5, &time));
  bool last_only;
  TF_RETURN_IF_ERROR(c->GetAttr("last_only", &last_only));
  ShapeHandle state = c->MakeShape({c->Dim(x, 0), time, c->Dim(wh, 0)});
  c->set_output(0, last_only ? c->MakeShape({c->Dim(x, 0), c->Dim(wh, 0)}) : state);
  c->set_output(1, state);
  c->set_output(2, c->MakeShape({c->Dim(x, 0), time, c->Dim(wh, 1)}));
  c->set_output(3, c->MakeShape({c->Dim(x, 0), time, c->UnknownDim()}));
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("SeqmaskLstm")
    .Input("x: float")        // (batch, time or 1, features); 1: the same input at every step
    .Input("wx: float")       // (features, 4 units)
    .Input("wh: float")       // (units, 4 units)
    .Input("b: float")        // (4 units,); step_bias: (time, 4 units)
    .Input("lengths: int32")  // (batch,): each row runs steps t < length only
    .Input("time: int32")     // scalar: steps to run
    .Attr("shards: int = 1")
    .Attr("last_only: bool = false")  // h is each row's output at its last real step only
    .Attr("step_bias: bool = false")
    .Output("h: float")       // (batch, time, units), zero at t >= length; last_only: (batch, units)
    .Output("c: float")       // (batch, time, units): kept for the backward pass (plan layout)
    .Output("gates: float")   // (batch, time, 4 units), after the activations: kept too
    .Output("kept: float")    // (batch, time, features + units or units): kept too
    .SetShapeFn(LstmShape);

REGISTER_OP("SeqmaskLstmGrad")
    .Input("x: float")
    .Input("wx: float")
    .Input("wh: float")
    .Input("lengths: int32")
    .Input("c: float")
    .Input("gates: float")
    .Input("kept: float")
    .Input("dh: float")       // the loss's gradient w.r.t. h, shaped as h
    .Attr("shards: int = 1")
    .Attr("last_only: bool = false")
    .Attr("input_gradient: bool = true")  // false: dx is left zero (x is the model's input)
    .Attr("step_bias: bool = false")      // db is (time, 4 units), as b was
    .Output("dx: float")
    .Output("dwx: float")
    .Output("dwh: float")
    .Output("db: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(2));
      bool step_bias;
      TF_RETURN_IF_ERROR(c->GetAttr("step_bias", &step_bias));
      const DimensionHandle width = c->Dim(c->input(2), 1);
      c->set_output(3, step_bias ? c->Matrix(c->Dim(c->input(4), 1), width) : c->Vector(width));
      return absl::OkStatus();
    });

namespace {

class SeqmaskLstmOp : public OpKernel {
 public:
  explicit SeqmaskLstmOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("shards", &shards_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("last_only", &last_only_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("step_bias", &step_bias_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& wx_in = ctx->input(1);
    const Tensor& wh_in = ctx->input(2);
    const Tensor& b_in = ctx->input(3);
    const Tensor& lengths = ctx->input(4);
    Dims d;
    OP_REQUIRES_OK(ctx, CheckInputs(x, wx_in, wh_in, lengths, ctx->input(5).scalar<int32_t>()(), &d));
    OP_REQUIRES(ctx,
                step_bias_ ? b_in.shape() == TensorShape({d.time, d.width})
                           : b_in.dims() == 1 && b_in.dim_size(0) == d.width,
                InvalidArgument(step_bias_ ? "b must be (time, 4 units)" : "b must be (4 units,)"));
    const Index B = d.batch, T = d.time, D = d.features, U = d.units, W = d.width;
    // Kept for the backward pass, per real step: the rows [x_t, h_{t-1}] the step's
    // matmul read, or h_{t-1} alone where x is one step repeated (its projection is
    // computed once, before the loop).
    const bool stacked = d.x_time == T;
    const Index Dk = stacked ? D : 0, K = Dk + U;
    Tensor *h_out, *c_out, *g_out, *kept_out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, last_only_ ? TensorShape({B, U}) : TensorShape({B, T, U}), &h_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({B, T, U}), &c_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({B, T, W}), &g_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({B, T, K}), &kept_out));
    if (B == 0 || T == 0) {
      h_out->flat<float>().setZero();
      return;
    }
    const float* X = x.flat<float>().data();
    float* H = h_out->flat<float>().data();
    float* C = c_out->flat<float>().data();
    float* G = g_out->flat<float>().data();
    float* KEPT = kept_out->flat<float>().data();
    const ConstView wx(wx_in.flat<float>().data(), D, W, Stride(W));
    const ConstView wh(wh_in.flat<float>().data(), U, W, Stride(W));
    const float* bias = b_in.flat<float>().data();
    Matrix w_xh;  // [W_x; W_h] (features + units, 4 units)
    if (stacked) {
      w_xh.resize(D + U, W);
      w_xh.topRows(D) = wx;
      w_xh.bottomRows(U) = wh;
    }
    const Plan plan(lengths.flat<int32_t>().data(), B, T, shards_);

    ForShards(ctx, plan.shards, [&](Index s) {
      const Plan::Slice slice = plan.Of(s, T);
      const Index n = slice.n, *rows = slice.rows, *length = slice.length;
      const std::vector<Index>&active = slice.active, &offset = slice.offset;
      Matrix p;  // a repeated input's projection, x W_x, done once: (n, 4 units)
      if (!stacked) p.noalias() = slice.Gather(X, D) * wx;
      const std::vector<float> zeros(U, 0.0f);
      std::vector<float> h_spare(U);  // h_t of a row with no step t + 1 to carry it into
      for (Index r = 0; r < n; ++r) {  // padded steps, and a row of length 0, output zero
        if (!last_only_) {
          std::fill(H + (rows[r] * T + length[r]) * U, H + (rows[r] + 1) * T * U, 0.0f);
        } else if (length[r] == 0) {
          std::fill_n(H + rows[r] * U, U, 0.0f);
        }
      }
      for (Index t = 0; t < T && active[t] > 0; ++t) {
        const Index a = active[t];
        View g(G + offset[t] * W, a, W, Stride(W));  // (active, 4 units)
        float* kept = KEPT + offset[t] * K;  // (active, K): [x_t, h_{t-1}] or h_{t-1}
        if (t == 0) {
          for (Index r = 0; r < a; ++r) std::fill_n(kept + r * K + Dk, U, 0.0f);  // h_{-1} = 0
        }
        if (stacked) {
          for (Index r = 0; r < a; ++r) std::copy_n(X + (rows[r] * T + t) * D, D, kept + r * K);
          g.noalias() = ConstView(kept, a, K, Stride(K)) * w_xh;
        } else {
          g = p.topRows(a);
          if (t > 0) g.noalias() += ConstView(kept, a, U, Stride(U)) * wh;
        }
        // The gates, the cell and the output, one pass per row; h_t goes beside x_{t+1}
        // where the next step reads it, and to the output.
        for (Index r = 0; r < a; ++r) {
          const float* c_prev = t > 0 ? C + (offset[t - 1] + r) * U : zeros.data();  // c_{-1} = 0
          float* h = t + 1 < T && r < active[t + 1] ? KEPT + (offset[t + 1] + r) * K + Dk : h_spare.data();
          GatesForward(g.data() + r * W, step_bias_ ? bias + t * W : bias, c_prev, C + (offset[t] + r) * U, h, U);
          if (!last_only_) {
            std::copy_n(h, U, H + (rows[r] * T + t) * U);
          } else if (t == length[r] - 1) {
            std::copy_n(h, U, H + rows[r] * U);
          }
        }
      }
    });
  }

 private:
  int shards_;
  bool last_only_, step_bias_;
};

class SeqmaskLstmGradOp : public OpKernel {
 public:
  explicit SeqmaskLstmGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("shards", &shards_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("last_only", &last_only_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("input_gradient", &input_gradient_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("step_bias", &step_bias_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& wx_in = ctx->input(1);
    const Tensor& wh_in = ctx->input(2);
    const Tensor& lengths = ctx->input(3);
    const Tensor& c_in = ctx->input(4);
    const Tensor& g_in = ctx->input(5);
    const Tensor& kept_in = ctx->input(6);
    const Tensor& dh_in = ctx->input(7);
    Dims d;
    OP_REQUIRES(ctx, c_in.dims() == 3, InvalidArgument("c must be (batch, time, units)"));
    OP_REQUIRES_OK(ctx, CheckInputs(x, wx_in, wh_in, lengths, c_in.dim_size(1), &d));
    const Index B = d.batch, T = d.time, D = d.features, U = d.units, W = d.width;
    const TensorShape state({B, T, U});
    const bool stacked = d.x_time == T;
    const Index Dk = stacked ? D : 0, K = Dk + U;
    OP_REQUIRES(ctx, kept_in.shape() == TensorShape({B, T, K}) && c_in.shape() == state &&
                         dh_in.shape() == (last_only_ ? TensorShape({B, U}) : state) &&
                         g_in.shape() == TensorShape({B, T, W}),
                InvalidArgument("c, gates, kept and dh must match the forward pass"));

    Tensor *dx_out, *dwx_out, *dwh_out, *db_out, dg_tmp;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, wx_in.shape(), &dwx_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, wh_in.shape(), &dwh_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, step_bias_ ? TensorShape({T, W}) : TensorShape({W}), &db_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT, TensorShape({B, T, W}), &dg_tmp));
    View dwx_all(dwx_out->flat<float>().data(), D, W, Stride(W));
    View dwh_all(dwh_out->flat<float>().data(), U, W, Stride(W));
    const Index bias_rows = step_bias_ ? T : 1;  // db: one row per step, or one in all
    View db_all(db_out->flat<float>().data(), bias_rows, W, Stride(W));
    dwx_all.setZero();
    dwh_all.setZero();
    db_all.setZero();
    dx_out->flat<float>().setZero();  // padded steps, and everything without input_gradient
    if (B == 0 || T == 0) return;
    const float* X = x.flat<float>().data();
    const float* C = c_in.flat<float>().data();
    const float* G = g_in.flat<float>().data();
    const float* KEPT = kept_in.flat<float>().data();
    const float* dH = dh_in.flat<float>().data();
    float* dX = dx_out->flat<float>().data();
    float* dG = dg_tmp.flat<float>().data();  // plan layout, as gates
    const ConstView wx(wx_in.flat<float>().data(), D, W, Stride(W));
    const ConstView wh(wh_in.flat<float>().data(), U, W, Stride(W));
    const Plan plan(lengths.flat<int32_t>().data(), B, T, shards_);

    std::vector<Matrix> dwx(plan.shards), dwh(plan.shards);
    std::vector<Matrix> db(plan.shards);
    ForShards(ctx, plan.shards, [&](Index s) {
      const Plan::Slice slice = plan.Of(s, T);
      const Index n = slice.n, *rows = slice.rows, *length = slice.length;
      const std::vector<Index>&active = slice.active, &offset = slice.offset;
      // Carried back: dh through W_h with the input gradient beside it, [dh_{t-1}, dx_t] =
      // dG_t [W_h; W_x]^T (one matmul), and dc through the forget gate. A row's first
      // step back (its last real step) finds both still zero: nothing comes after it.
      const bool dx_in_loop = stacked && input_gradient_;
      Matrix w_t(W, dx_in_loop ? U + D : U);  // (4 units, units [+ features])
      w_t.leftCols(U) = wh.transpose();
      if (dx_in_loop) w_t.rightCols(D) = wx.transpose();
      Matrix back = Matrix::Zero(n, w_t.cols());  // (n, units [+ features])
      Matrix dc = Matrix::Zero(n, U);
      const std::vector<float> zeros(U, 0.0f);
      for (Index t = T - 1; t >= 0; --t) {
        const Index a = active[t];
        if (a == 0) continue;
        const float* g = G + offset[t] * W;
        float* dg = dG + offset[t] * W;
        // The gates' gradients, one pass per row.
        for (Index r = 0; r < a; ++r) {
          const float* c_prev = t > 0 ? C + (offset[t - 1] + r) * U : zeros.data();  // c_{-1} = 0
          const float* dh_out = !last_only_ ? dH + (rows[r] * T + t) * U
                                : t == length[r] - 1 ? dH + rows[r] * U
                                                     : zeros.data();
          GatesBackward(g + r * W, C + (offset[t] + r) * U, c_prev, back.data() + r * back.cols(),
                        dh_out, dc.data() + r * U, dg + r * W, U);
        }
        if (dx_in_loop || t > 0) back.topRows(a).noalias() = ConstView(dg, a, W, Stride(W)) * w_t;
        if (dx_in_loop) {
          for (Index r = 0; r < a; ++r) std::copy_n(back.data() + r * back.cols() + U, D, dX + (rows[r] * T + t) * D);
        }
      }
      // Every real step of the slice at once: (rows, 4 units) and (rows, K).
      const Index total = offset[T] - offset[0];
      const ConstView dg_all(dG + offset[0] * W, total, W, Stride(W));
      const ConstView kept_all(KEPT + offset[0] * K, total, K, Stride(K));
      if (step_bias_) {  // per step, summed over the slice's rows that reach it
        db[s] = Matrix::Zero(T, W);
        for (Index t = 0; t < T && active[t] > 0; ++t) {
          db[s].row(t) = ConstView(dG + offset[t] * W, active[t], W, Stride(W)).colwise().sum();
        }
      } else {
        db[s] = dg_all.colwise().sum();
      }
      // [dW_x; dW_h] = sum_t [x_t, h_{t-1}]^T dG_t (or dW_h alone): one matmul.
      Matrix dw = Matrix::Zero(K, W);
      if (total > 0) dw.noalias() = kept_all.transpose() * dg_all;  // (K, 4 units)
      dwh[s] = dw.bottomRows(U);
      if (stacked) {
        dwx[s] = dw.topRows(D);
      } else {
        // x was the same at every step: its projection's gradient is the sum over steps.
        Matrix dp = Matrix::Zero(n, W);
        for (Index t = 0; t < T && active[t] > 0; ++t) {
          dp.topRows(active[t]) += ConstView(dG + offset[t] * W, active[t], W, Stride(W));
        }
        dwx[s].noalias() = slice.Gather(X, D).transpose() * dp;
        if (input_gradient_) {
          const Matrix dxs = dp * wx.transpose();  // (n, features)
          for (Index r = 0; r < n; ++r) std::copy_n(dxs.data() + r * D, D, dX + rows[r] * D);
        }
      }
    });
    for (Index s = 0; s < plan.shards; ++s) {
      dwx_all += dwx[s];
      dwh_all += dwh[s];
      db_all += db[s];
    }
  }

 private:
  int shards_;
  bool last_only_, input_gradient_, step_bias_;
};

}  // namespace

REGISTER_KERNEL_BUILDER(Name("SeqmaskLstm").Device(tensorflow::DEVICE_CPU), SeqmaskLstmOp);
REGISTER_KERNEL_BUILDER(Name("SeqmaskLstmGrad").Device(tensorflow::DEVICE_CPU), SeqmaskLstmGradOp);
