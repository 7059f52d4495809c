// Which teacher is responsible for which image, estimated without labels from what the teachers
// say about the transfer set: each teacher's confidence score, calibrated so the share of images
// routed to each task matches a prior, and the confidently routed images that teach the student
// to route from pixels.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace amalgam {

/// How a teacher's logits become one score of "this image is mine".
enum class RoutingScore {
  /// T·logsumexp(logits/T), the free energy (an out-of-distribution score), at a temperature
  /// T = energy_temperature x the std of the teacher's logits over the transfer set
  kEnergy,
  kMaxLogit,  ///< the largest logit
  kMaxProb,   ///< the largest softmax probability
};

/// The score called `name` (energy | max-logit | max-prob); throws Error naming --routing-score.
RoutingScore parse_routing_score(const std::string& name);

/// Where the task factor of the student's soft targets comes from.
enum class RoutingRule {
  kNone,      ///< nowhere: the softmax of the teachers' concatenated logits (plain KD's target)
  kTeachers,  ///< the calibrated teacher scores (responsibility), on every image
  kGate,      ///< the confidently routed images' tasks, learned by the student from pixels
  /// the teachers' concatenated logits' task shares (plain KD's union), on every image; each
  /// teacher is still imitated within its slice on the images SliceWeights gives it
  kConcatenated,
};

/// The rule called `name` (none | teachers | gate | concatenated); throws Error naming --routing.
RoutingRule parse_routing_rule(const std::string& name);

/// How strongly each image carries a teacher's within-task soft targets.
enum class SliceWeights {
  /// max(responsibility, the teacher's share of the concatenated soft targets): an image an
  /// expert claims is imitated as plain KD would, and routing only adds the images it misses.
  kExpertise,
  kResponsibility,  ///< the calibrated responsibility alone
  kUniform,         ///< every teacher on every image at full weight (as if it were alone)
};

/// The weighting called `name` (expertise | responsibility | uniform); throws Error naming
/// --slice-weights.
SliceWeights parse_slice_weights(const std::string& name);

/// The teachers' scores as log-likelihoods of their tasks, fitted on labeled validation images by
/// the routing check (training/routing_check.h): log p(image | task i) = scale x score_i + offset_i
/// up to a constant, each energy taken at a fixed temperature. With it the transfer set's task
/// shares can be estimated (estimate_task_prior) instead of assumed.
struct ScoreCalibration {
  std::vector<double> temperatures;  ///< per teacher: the energy temperature, in logit units
  double scale = 1.0;                ///< shared slope of the scores (Platt scaling)
  std::vector<double> offsets;       ///< per teacher: added after the scale
  /// Whether it was fitted (empty: the class-count prior is used).
  bool fitted() const { return !offsets.empty(); }
};

void to_json(nlohmann::json& j, const ScoreCalibration& calibration);
void from_json(const nlohmann::json& j, ScoreCalibration& calibration);

/// Options of the routing estimate.
struct RoutingOptions {
  RoutingRule rule = RoutingRule::kGate;       ///< the task factor of the targets
  RoutingScore score = RoutingScore::kEnergy;  ///< per-teacher score
  /// Energy temperature in units of each teacher's logit std, so teachers whose logits differ in
  /// scale are compared alike.
  double energy_temperature = 2.5;
  /// Expected share of transfer images per task, in teacher order (normalised); empty: in
  /// proportion to the teachers' class counts.
  std::vector<double> prior;
  /// With labeled validation images and no `prior`: have the routing check fit `likelihood`
  /// there, so the transfer set's task shares are estimated rather than assumed. Off by default:
  /// it helps where the transfer set's mix is not the class counts' (docs/results.md).
  bool estimate_prior = false;
  /// When fitted and `prior` is empty, the transfer set's task shares are estimated from it by EM
  /// (label shift: Saerens et al. 2002) instead of taken in proportion to the class counts.
  ScoreCalibration likelihood;
  /// Share of each predicted (task, class) cell kept as confidently routed: balanced per class
  /// so the confident images are not all of the easiest classes.
  double confident_share = 0.4;
  double lambda_task = 1.0;  ///< weight of the student's task-routing term (teachers, gate)
  /// Gate rule: share of each batch's confidently routed images per task, those the student's
  /// gate disagrees with most, left out of the task term (the small-loss trick against wrong
  /// pseudo-labels); reached linearly over the first fifth of the run. 0.2 chosen on the demo's
  /// validation split: union 85.84 -> 86.10, routing 88.60 -> 89.30 (docs/results.md).
  double gate_forget = 0.2;
  /// Per image and teacher, the weight of its within-task soft targets and feature terms.
  SliceWeights slice_weights = SliceWeights::kExpertise;
  /// After training, shift the student's task slices so its gate routes the transfer images in
  /// the shares the calibrated teacher scores do (training/gate_calibration.h).
  bool calibrate_gate = true;
  /// Before training, where labeled validation images exist, fall back to rule none if the
  /// calibrated scores route them no better than the concatenated logits
  /// (training/routing_check.h).
  bool check = true;
  /// Where no labeled check decided (no validation images), fall back to rule concatenated when
  /// the teachers' scores agree about which transfer images are theirs (score_agreement above
  /// kMaxScoreAgreement). apply_routing_check clears it once labels have decided. Read as false
  /// from a record without it (a run from before the check keeps its rule when resumed).
  bool label_free_check = true;
};

/// Throws Error naming the option for a nonsense value.
void validate(const RoutingOptions& options);

void to_json(nlohmann::json& j, const RoutingOptions& options);
void from_json(const nlohmann::json& j, RoutingOptions& options);

/// The routing estimate for every transfer image.
struct TaskRouting {
  at::Tensor responsibility;  ///< float [N,T]: calibrated P(task | image) from the scores
  at::Tensor task;            ///< int64 [N]: the most likely task
  at::Tensor confident;       ///< bool [N]: among the confident share of its (task, class) cell
  std::vector<double> bias;   ///< per teacher: added to its score by the calibration
  std::vector<double> prior;  ///< the shares the calibration matched
  double agreement = 0;       ///< score_agreement of the teachers' scores over these images
};

/// A routing estimated on some images, kept to route others (the batches of a streamed transfer
/// set, whose teachers answer each batch as it comes): the scores' temperatures, the calibration's
/// biases and, per (task, class) cell, the smallest margin the estimate counted as confident.
struct FittedRouting {
  std::vector<double> temperatures;  ///< energy temperatures in logit units (other scores: none)
  std::vector<double> bias;          ///< per teacher, added to its score
  std::vector<double> cell_margin;   ///< per cell: least confident margin (+inf: none confident)
};

/// Sampled images a (task, class) cell needs for its own confidence margin; a cell with fewer
/// takes its task's (the margin above which the task's confident share of the sample lies).
constexpr int64_t kMinCellSample = 8;

/// Keeps what route_by_teachers estimated from `logits` ([N,K_i]) as `routing`.
FittedRouting fit_routing(const std::vector<at::Tensor>& logits, const TaskRouting& routing,
                          const RoutingOptions& options);

/// Routes images the estimate did not see from their teachers' `logits` ([B,K_i]): the
/// estimate's scores, biases and cell margins, so an image gets the routing it would have had
/// in the estimate (prior and agreement are the estimate's, left empty here).
TaskRouting apply_routing(const std::vector<at::Tensor>& logits, const FittedRouting& fitted,
                          const RoutingOptions& options);

/// Per task, the share of images routed to it: `task` holds each image's task index (int64
/// [N], values in [0, tasks)).
std::vector<double> task_shares(const at::Tensor& task, int64_t tasks);

/// Each teacher's score for every image: [N,T] from per-teacher logits [N,K_i].
/// `temperature`: the energy's, in units of each teacher's logit std over these images, unless
/// `fixed_temperatures` gives each teacher's in logit units.
at::Tensor routing_scores(const std::vector<at::Tensor>& logits, RoutingScore score,
                          double temperature, const std::vector<double>& fixed_temperatures = {});

/// Each teacher's energy temperature in logit units: `temperature` x the std of its logits.
std::vector<double> energy_temperatures(const std::vector<at::Tensor>& logits, double temperature);

/// Fits `calibration`'s scale and offsets (temperatures kept) by maximum likelihood of the true
/// tasks `truth` [N] (values 0..T-1) of images whose scores are [N,T].
void fit_score_calibration(const at::Tensor& scores, const at::Tensor& truth,
                           ScoreCalibration& calibration);

/// Biases b [T] (mean 0) such that the mean over images of softmax(scores + b) is `prior` [T]
/// (normalised): EM on the task priors, with `scores` [N,T] as log-likelihoods.
at::Tensor calibrate_to_prior(const at::Tensor& scores, const std::vector<double>& prior);

/// The task shares of images whose calibrated scores (scale x scores [N,T] + offsets) are per-task
/// log-likelihoods: the EM fixed point p = mean over images of softmax(calibrated + log p), from
/// uniform shares; every share at least kMinEstimatedShare (below 50 tasks; mixed with uniform).
std::vector<double> estimate_task_prior(const at::Tensor& scores,
                                        const ScoreCalibration& calibration);

/// Smallest task share estimate_task_prior returns: no task is routed away entirely.
constexpr double kMinEstimatedShare = 0.02;

/// How much the teachers agree about which images are theirs: the mean over teacher pairs of the
/// Pearson correlation of their scores ([N,T], one column per teacher) over the images; 0 for one
/// teacher. Experts of disjoint tasks scoring "this image is mine" should disagree (a negative
/// correlation); scores that rise and fall together measure something the images share, not
/// their task.
double score_agreement(const at::Tensor& scores);

/// Largest score_agreement at which the teachers' scores count as task evidence without labels.
/// Measured on five set-ups' transfer sets (docs/results.md): where routing helps, the demo's
/// teachers -0.43, cross-domain's -0.24 (union +17.8 over KD) and issue 35's probe +0.03 (its
/// labeled check keeps the routing; union 65.6 -> 71.2); where the labeled check falls back,
/// tv-small +0.26 and tv-vit +0.24 (there routing collapsed the union to 28.1 vs KD's 46.0). The
/// threshold sits between the two groups.
constexpr double kMaxScoreAgreement = 0.15;

/// Whether the label-free check acts under `options`: the check on, no labeled check decided, and
/// a rule that routes.
bool label_free_check_applies(const RoutingOptions& options);

/// Whether the label-free check acts under `options` and `agreement` calls for the fall-back.
bool falls_back_without_labels(const RoutingOptions& options, double agreement);

/// The calibrated routing of images whose teacher logits are `logits` (per teacher [N,K_i]).
TaskRouting route_by_teachers(const std::vector<at::Tensor>& logits, const RoutingOptions& options);

/// Union predictions (indices into the concatenated head) when P(task) = `task_probs` [N,T] and
/// each teacher's softmax gives P(class | task): argmax over tasks and classes of the product.
at::Tensor routed_union_prediction(const std::vector<at::Tensor>& logits,
                                   const at::Tensor& task_probs);

/// log slice_probabilities, computed stably (the student's task-routing loss uses it).
at::Tensor slice_log_probabilities(const at::Tensor& head_logits,
                                   const std::vector<int64_t>& sizes);

/// Each task's P(task | image) as the student sees it: the softmax mass of the task's slice of
/// `head_logits` [N,K]; `sizes` are the slices' widths in order. Returns [N,T].
at::Tensor slice_probabilities(const at::Tensor& head_logits, const std::vector<int64_t>& sizes);

}  // namespace amalgam
