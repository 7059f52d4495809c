// The amalgamation objective: one module per method, owning its trainable parts, behind one
// interface; the registry that names the methods and the one factory that makes them.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "method/head_layout.h"
#include "method/loss_values.h"
#include "method/routing.h"
#include "models/network.h"

namespace amalgam {

class CommonFeatureBlockImpl;

/// ObjectiveConfig::lambda_cf's "the method decides".
constexpr double kMethodDefault = -1.0;

/// Everything that configures an objective: pure values (config.json's "objective").
struct ObjectiveConfig {
  std::string method = "cfl";  ///< a name from methods() (parsed by find_method)
  double temperature = 1.0;    ///< T of the soft targets
  double lambda_kd = 1.0;      ///< weight of the soft-target term
  /// Weight of the feature terms (common-feature, or hints); kMethodDefault: the method's own
  /// (MethodInfo::default_lambda_cf), resolved by make_objective.
  double lambda_cf = -1.0;
  double beta = 1.0;                ///< weight of reconstruction inside the common-feature terms
  std::vector<double> sigmas;       ///< MMD kernel bandwidths (empty: the defaults)
  bool use_mmd = true;              ///< cfl: include the MMD term (off: an ablation)
  bool use_reconstruction = true;   ///< cfl: include the reconstruction term (off: an ablation)
  bool fixed_common_space = false;  ///< cfl control: align layers and extractor stay at init
  int64_t common_channels = 32;     ///< cfl: h, channels of the common space
  int64_t extractor_blocks = 2;     ///< cfl: residual units in the shared extractor
  /// cfl: share of the run over which the feature terms' weight rises linearly from 0 to
  /// lambda_cf, so the soft targets shape the student first.
  double feature_warmup = 0.0;
  RoutingOptions routing;  ///< cfl: which teacher answers for which image
};

/// Throws Error naming the option for an unknown method or a nonsense weight.
void validate(const ObjectiveConfig& config);

/// What an objective is built for: its config and the shapes and head of the run.
struct ObjectiveSetup {
  ObjectiveConfig config;                            ///< the objective's options
  std::vector<std::vector<int64_t>> teacher_shapes;  ///< each teacher's feature map {C,H,W}
  std::vector<int64_t> student_shape;                ///< the student's feature map {C,H,W}
  HeadLayout head;                                   ///< the student's head, in teacher order
  double parts_lr_mult = 10.0;  ///< learning-rate multiplier of the objective's own parts
  /// Every teacher's logits for every transfer image ([N,K_i] each, on the CPU), for objectives
  /// that estimate which teacher answers for which image; computed when first called.
  std::function<std::vector<at::Tensor>()> transfer_logits;
};

/// Maps a process's share of a batch to the whole batch (data-parallel runs: every rank's rows,
/// differentiably); empty when one process holds the whole batch.
using BatchGather = std::function<at::Tensor(const at::Tensor&)>;

/// What a loss may know of its batch besides the networks' outputs.
struct BatchContext {
  /// Widens distribution terms (MMD) to the whole batch in data-parallel runs; may be empty.
  BatchGather gather;
  at::Tensor indices;   ///< int64 [B]: transfer-set positions of the batch's images
  double progress = 0;  ///< share of the run's steps done before this one, in [0, 1)
};

/// Base of every objective. Its trainable parts are registered submodules, so saving the module
/// saves all that a run checkpoint needs of it.
class ObjectiveImpl : public torch::nn::Module {
 public:
  /// The loss of one batch: the student's outputs against the teachers'.
  virtual LossTerms loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                         const BatchContext& batch) = 0;
  /// Its trainable parts as optimiser groups (none for a plain soft-target objective).
  virtual std::vector<ParamGroup> parameter_groups() { return {}; }
  /// The common feature block of objectives that learn one (embedding, probes, student files).
  virtual CommonFeatureBlockImpl* common_space() { return nullptr; }
  /// What --dry-run shows of its parts (null when it has none).
  virtual nlohmann::json summary() { return nullptr; }
  /// When the student learns to route (its head's task slices are a gate): the share of the
  /// transfer images routed to each task by the routing it learns from, to calibrate the gate to
  /// after training; empty otherwise.
  virtual std::vector<double> gate_shares() const { return {}; }
};

/// Shared handle to any objective.
using Objective = std::shared_ptr<ObjectiveImpl>;

/// A method amalgamate can train with.
struct MethodInfo {
  const char* name;                                ///< what --method takes
  const char* summary;                             ///< one line for --help and tables
  Objective (*make)(const ObjectiveSetup& setup);  ///< builds its objective
  double default_lambda_cf;  ///< its feature-term weight when --lambda-cf is not given
};

/// Every method, in --help order.
const std::vector<MethodInfo>& methods();

/// The method called `name`; throws Error naming --method otherwise. The one place where method
/// names are compared.
const MethodInfo& find_method(const std::string& name);

/// "cfl, kd, fitnet": the method names, for help texts and errors.
std::string method_names();

/// `config` with the method's defaults filled in (lambda_cf).
ObjectiveConfig resolve_defaults(ObjectiveConfig config);

/// Builds the objective setup.config.method names (its parts draw from LibTorch's generator),
/// with resolve_defaults applied.
Objective make_objective(const ObjectiveSetup& setup);

/// The soft-target term: T² · softCE(student/T, softmax(concatenated teacher logits / T)).
at::Tensor soft_target_loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                            double temperature);

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ObjectiveConfig, method, temperature, lambda_kd,
                                                lambda_cf, beta, sigmas, use_mmd,
                                                use_reconstruction, fixed_common_space,
                                                common_channels, extractor_blocks, feature_warmup,
                                                routing)

}  // namespace amalgam
