import Foundation
import LetheData
import LetheJSON
import LetheModels
import LetheRuns
import LetheSpec
import LetheTensor

/// One evaluation mask (spec: `evaluate.masks`) and its name in eval.json, e.g. `center_crop_0.25`.
struct EvaluationMask {
    let transform: MaskTransform
    var name: String { "\(transform.kind.rawValue)_\(JSONText.scalar(.number(transform.ratio)))" }
}

/// One split's images completed under one mask, measured image by image, plus the first few
/// images of each kind for the sample grid.
struct Measured {
    var images = 0
    /// PSNR of the hidden region, per image.
    var psnr: [Double] = []
    /// PSNR of the hidden region when the hole is filled with the mean of the visible pixels.
    var meanFillPSNR: [Double] = []
    /// SSIM of the whole completed image, per image.
    var ssim: [Double] = []
    /// Classifier features (rows of the classifier's width) and class probabilities, per image.
    var features: [Float] = []
    var probabilities: [Float] = []
    /// VQ-GAN: the codes of the latent cells the hole touches, per image.
    var codes: [[Int]] = []
    var masked: [Tensor<Float>] = []
    var truth: [Tensor<Float>] = []
    var completed: [Tensor<Float>] = []

    /// Rows of the sample grid: masked input (hole in grey), ground truth, completion.
    func sample(_ pick: KeyPath<Measured, [Tensor<Float>]>, count: Int) -> Tensor<Float> {
        Tensor.concat(self[keyPath: pick], axis: 0).slice(axis: 0, 0..<min(count, images))
    }
}

enum Evaluation {
    /// Images per completion batch; each batch gets one mask (random_box draws one per batch).
    static let chunk = 64

    /// Completes the images `indices` of `test` under `mask` with `complete`, drawing the masks from
    /// `maskRNG` only (so every model and reference sees the same masks), and measures them.
    static func measure(
        test: LabeledImages, indices: [Int], size: Int, mask: MaskTransform, maskRNG: Philox,
        classifier: FeatureClassifier<Float>?, keep: Int, codes: ((Tensor<Float>, [Bool]) -> [[Int]]?)? = nil,
        complete: (Tensor<Float>, [Bool]) -> Tensor<Float>
    ) -> Measured {
        var masks = maskRNG
        var out = Measured()
        for start in stride(from: 0, to: indices.count, by: chunk) {
            let ids = Array(indices[start..<min(indices.count, start + chunk)])
            let x = test.tensor(ids, size: size)
            let hidden = mask.hidden(size: size, rng: &masks)
            let y = GradMode.withoutGrad { complete(x, hidden) }
            let (model, fill) = hiddenPSNR(truth: x, completed: y, hidden: hidden)
            out.psnr += model
            out.meanFillPSNR += fill
            out.ssim += Metrics.ssimPerImage(y, x)
            if let classifier {
                GradMode.withoutGrad {
                    let f = classifier.features(y)
                    out.features += f.storage
                    out.probabilities += classifier.logits(features: f).softmax().storage
                }
            }
            if let c = codes?(x, hidden) { out.codes += c }
            if out.images < keep {
                out.masked.append(MaskTransform.apply(x, hidden: [hidden], fill: 0.5))
                out.truth.append(x)
                out.completed.append(y)
            }
            out.images += ids.count
        }
        return out
    }

    /// Per image: PSNR of the hidden pixels of `completed`, and of the mean-of-visible-pixels fill.
    static func hiddenPSNR(truth x: Tensor<Float>, completed y: Tensor<Float>, hidden: [Bool]) -> (
        model: [Double], meanFill: [Double]
    ) {
        let pixels = x.shape[2] * x.shape[3]
        let plane = x.shape[1] * pixels
        let fills = visibleMeans(x, hidden: hidden)
        var model: [Double] = []
        var meanFill: [Double] = []
        for i in 0..<x.shape[0] {
            var errModel = 0.0
            var errMean = 0.0
            var hiddenCount = 0.0
            for p in 0..<plane where hidden[p % pixels] {
                let t = Double(x.storage[i * plane + p])
                let e = Double(y.storage[i * plane + p]) - t
                errModel += e * e
                errMean += (fills[i] - t) * (fills[i] - t)
                hiddenCount += 1
            }
            model.append(psnr(errModel / max(1, hiddenCount)))
            meanFill.append(psnr(errMean / max(1, hiddenCount)))
        }
        return (model, meanFill)
    }

    /// The mean of each image's visible pixels (0.5 when nothing is visible).
    static func visibleMeans(_ x: Tensor<Float>, hidden: [Bool]) -> [Double] {
        let pixels = x.shape[2] * x.shape[3]
        let plane = x.shape[1] * pixels
        return (0..<x.shape[0]).map { i in
            var sum = 0.0
            var count = 0.0
            for p in 0..<plane where !hidden[p % pixels] {
                sum += Double(x.storage[i * plane + p])
                count += 1
            }
            return count > 0 ? sum / count : 0.5
        }
    }

    /// Peak signal-to-noise ratio for images in [0, 1], capped at 100 dB for a perfect match.
    static func psnr(_ mse: Double) -> Double { mse <= 1e-10 ? 100 : 10 * log10(1 / mse) }

    /// The hole filled with the mean of each image's visible pixels.
    static func meanFill(_ x: Tensor<Float>, hidden: [Bool]) -> Tensor<Float> {
        let pixels = x.shape[2] * x.shape[3]
        let plane = x.shape[1] * pixels
        let fills = visibleMeans(x, hidden: hidden)
        var out = x.storage
        for i in 0..<x.shape[0] {
            for p in 0..<plane where hidden[p % pixels] { out[i * plane + p] = Float(fills[i]) }
        }
        return Tensor(out, shape: x.shape)
    }
}

/// Measures models on held-out test images of the retain and the forget classes under every
/// evaluation mask: FID, KID, IS and embedding cosine in the feature classifier's space, PSNR of the
/// hidden region, SSIM and the classifier's accuracy on the completed images, each with a seeded
/// bootstrap interval; and the same for the reference completions (ground truth, mean fill, noise
/// fill) that bound every metric.
struct ModelEvaluator {
    struct Split {
        var name: String
        var indices: [Int]
    }
    struct Result {
        /// Per evaluation mask (in `masks` order), per split.
        var measured: [[String: Measured]] = []
        /// Per mask, per split: metric -> {value, ci95} (KID: {value, std}).
        var summaries: [[String: JSONObject]] = []
        /// Classifier features of the headline mask's completions, per split (for the embedding plot).
        var features: [String: [Float]] { measured.first?.mapValues(\.features).filter { !$0.value.isEmpty } ?? [:] }
        var featureWidth = 0
        /// The headline mask's point values: split -> metric -> value.
        var metrics: JSONObject {
            JSONObject(
                (summaries.first ?? [:]).sorted { $0.key < $1.key }.map { split, m in
                    (split, .object(JSONObject(m.map { ($0.key, $0.value["value"] ?? .null) })))
                })
        }
    }
    /// The reference completions, in the order eval.json lists them.
    static let references = ["ground_truth", "mean_fill", "noise_fill"]

    let test: LabeledImages
    let size: Int
    let masks: [EvaluationMask]
    let rng: Philox
    let splits: [Split]
    let classifier: FeatureClassifier<Float>?
    let metrics: Set<EvaluateSpec.Metric>
    let resamples: Int
    let kidSubsets: Int
    let kidSubsetSize: Int
    /// Images per split kept as tensors for the sample grid.
    let keep: Int
    private var truthFeatures: [String: [Float]] = [:]
    private var truthMoments: [String: Statistics.Features] = [:]

    init(
        test: LabeledImages, size: Int, masks: [EvaluationMask], rng: Philox, splits: [Split],
        classifier: FeatureClassifier<Float>?, settings: EvaluateSpec, keep: Int = 32
    ) {
        (self.test, self.size, self.masks, self.rng, self.splits, self.classifier) = (
            test, size, masks, rng, splits, classifier
        )
        metrics = Set(settings.metrics)
        resamples = settings.bootstrap
        kidSubsets = settings.kidSubsets
        kidSubsetSize = settings.kidSubsetSize
        self.keep = keep
        if let classifier {
            for split in splits {
                let f = GradMode.withoutGrad { Self.features(classifier, test.tensor(split.indices, size: size)) }
                truthFeatures[split.name] = f
                truthMoments[split.name] = Statistics.Features(f, d: classifier.featureWidth)
            }
        }
    }

    static func features(_ classifier: FeatureClassifier<Float>, _ x: Tensor<Float>) -> [Float] {
        stride(from: 0, to: x.shape[0], by: 500).flatMap {
            classifier.features(x.slice(axis: 0, $0..<min(x.shape[0], $0 + 500))).storage
        }
    }

    /// Every split under every mask completed by `family` with the same masks and draws, and measured.
    /// `cachedAs`: the identity of a model that does not change within a process (the original model
    /// of `lethe table`'s runs: its weights' identity and the model settings that sample from it);
    /// its results are then computed once per process, like the references'.
    func evaluate(_ family: any ModelFamily, cachedAs identity: String? = nil) -> Result {
        guard let identity else { return evaluate(family) }
        return ReferenceCache.shared.value(for: cacheKey("model " + identity)) { evaluate(family) }
    }

    func evaluate(_ family: any ModelFamily) -> Result {
        run { mask, split, maskRNG in
            var draws = rng.split("complete").split(mask.name).split(split.name)
            return Evaluation.measure(
                test: test, indices: split.indices, size: size, mask: mask.transform, maskRNG: maskRNG,
                classifier: classifier, keep: keep, codes: { family.holeCodes($0, hidden: $1) },
                complete: { family.complete($0, hidden: $1, rng: &draws) })
        }
    }

    /// A reference completion: `ground_truth` (the image itself: the ceiling of every metric),
    /// `mean_fill` (the hole filled with the mean of the visible pixels: what the context alone
    /// gives, so its accuracy is the context-only accuracy) or `noise_fill` (uniform noise in the hole).
    func reference(_ name: String) -> Result {
        ReferenceCache.shared.value(for: cacheKey(name)) { computeReference(name) }
    }

    /// What a reference result depends on: the test images of each split, the masks, the seeded
    /// streams, the feature classifier and the statistics settings (none of it on the model).
    func cacheKey(_ name: String) -> String {
        var fingerprint = rng.split("cache key")
        let stream = (0..<4).map { _ in String(fingerprint.next(), radix: 16) }.joined()
        let weights = classifier.map { c in "\(c.parameters.map { $0.storage.hashValue })" } ?? "-"
        var parts = [name, "\(size)", stream, "\(test.count)", "\(test.pixels.hashValue)", "\(test.labels.hashValue)"]
        parts += [
            "\(metrics.map(\.rawValue).sorted())", "\(resamples)", "\(kidSubsets)", "\(kidSubsetSize)", "\(keep)",
            weights,
        ]
        parts += masks.map(\.name) + splits.map { "\($0.name):\($0.indices.hashValue)" }
        return parts.joined(separator: "|")
    }

    private func computeReference(_ name: String) -> Result {
        run { mask, split, maskRNG in
            var noise = rng.split("noise_fill").split(mask.name).split(split.name)
            return Evaluation.measure(
                test: test, indices: split.indices, size: size, mask: mask.transform, maskRNG: maskRNG,
                classifier: classifier, keep: keep
            ) { x, hidden in
                switch name {
                case "ground_truth": return x
                case "mean_fill": return Evaluation.meanFill(x, hidden: hidden)
                default:
                    return Families.composite(x, Tensor<Float>.uniform(x.shape, 0, 1, rng: &noise), hidden: hidden)
                }
            }
        }
    }

    private func run(_ measure: (EvaluationMask, Split, Philox) -> Measured) -> Result {
        var result = Result()
        result.featureWidth = classifier?.featureWidth ?? 0
        for mask in masks {
            var byMask: [String: Measured] = [:]
            var summaries: [String: JSONObject] = [:]
            for split in splits {
                let m = measure(mask, split, rng.split("masks").split(mask.name).split(split.name))
                byMask[split.name] = m
                summaries[split.name] = summarize(m, split: split, mask: mask)
            }
            result.measured.append(byMask)
            result.summaries.append(summaries)
        }
        return result
    }

    /// Each requested metric with its interval. The resamples depend only on the seed, the mask and
    /// the split, so they are the same for every model and reference.
    func summarize(_ m: Measured, split: Split, mask: EvaluationMask) -> JSONObject {
        let stream = rng.split("bootstrap").split(mask.name).split(split.name)
        var out = JSONObject()
        func put(_ metric: EvaluateSpec.Metric, _ e: Statistics.Estimate) { out[metric.rawValue] = e.json }
        if metrics.contains(.psnr) { put(.psnr, Statistics.mean(m.psnr, resamples: resamples, rng: stream)) }
        if metrics.contains(.ssim) { put(.ssim, Statistics.mean(m.ssim, resamples: resamples, rng: stream)) }
        guard let classifier, let truth = truthFeatures[split.name], let moments = truthMoments[split.name],
            !m.features.isEmpty
        else { return out }
        let d = classifier.featureWidth
        let classes = classifier.classes
        let n = m.images
        if metrics.contains(.fid) {
            let generated = Statistics.Features(m.features, d: d)
            if m.features == truth {
                // The ground truth itself: zero in every resample.
                put(.fid, Statistics.Estimate(value: 0, interval: resamples > 0 ? (0, 0) : nil))
            } else {
                put(
                    .fid,
                    Statistics.bootstrap(n: n, resamples: resamples, rng: stream) {
                        Statistics.fid(generated, moments, weights: $0)
                    })
            }
        }
        if metrics.contains(.kid) {
            let kid = Statistics.kid(
                m.features, truth, d: d, subsets: kidSubsets, size: kidSubsetSize,
                rng: rng.split("kid").split(mask.name).split(split.name))
            out["kid"] = .object(JSONObject([("value", .number(kid.mean)), ("std", .number(kid.std))]))
        }
        if metrics.contains(.is) {
            let p = m.probabilities
            put(
                .is,
                Statistics.bootstrap(n: n, resamples: resamples, rng: stream) {
                    Statistics.inceptionScore(p, classes: classes, weights: $0)
                })
        }
        if metrics.contains(.cosine) {
            put(.cosine, Statistics.mean(Metrics.cosines(m.features, truth, d: d), resamples: resamples, rng: stream))
        }
        if metrics.contains(.accuracy) {
            let labels = split.indices.map { test.labels[$0] }
            put(
                .accuracy,
                Statistics.mean(
                    Metrics.correct(m.probabilities, classes: classes, labels: labels), resamples: resamples,
                    rng: stream))
        }
        return out
    }

    /// eval.json's `per_mask`: for every mask, each model's and reference's metrics per split with
    /// intervals, and (VQ-GAN) the share of the hole's codes that changed between the first two models.
    func perMaskJSON(_ models: [(name: String, result: Result)]) -> JSONValue {
        .array(
            masks.enumerated().map { k, mask in
                var o = JSONObject([
                    ("name", .string(mask.name)), ("mask", .string(mask.transform.kind.rawValue)),
                    ("ratio", .number(mask.transform.ratio)),
                ])
                for (name, result) in models {
                    o[name] = .object(
                        JSONObject(splits.map { ($0.name, .object(result.summaries[k][$0.name] ?? JSONObject())) }))
                }
                if models.count >= 2 {
                    let change = splits.compactMap { split -> (String, JSONValue)? in
                        guard let a = models[0].result.measured[k][split.name]?.codes,
                            let b = models[1].result.measured[k][split.name]?.codes, !a.isEmpty, a.count == b.count
                        else { return nil }
                        return (split.name, .number(Metrics.changedShare(a, b)))
                    }
                    if !change.isEmpty { o["hole_code_change"] = .object(JSONObject(change)) }
                }
                return .object(o)
            })
    }

    /// What eval.json records about how the numbers were computed.
    var statisticsJSON: JSONValue {
        .object(
            JSONObject([
                ("bootstrap_resamples", .integer(resamples)),
                ("interval", .string("95% percentile bootstrap, resampling test images (paired across models)")),
                ("kid_subsets", .integer(kidSubsets)), ("kid_subset_size", .integer(kidSubsetSize)),
                ("kid_kernel", .string("(x.y / d + 1)^3, unbiased MMD^2; std over subsets")),
            ]))
    }
}

/// Reference results of this process, by what they depend on: `lethe table` evaluates many runs of
/// the same data, masks and seed, and the references do not depend on the model (nor the original
/// model's results on the unlearned one).
final class ReferenceCache: @unchecked Sendable {
    static let shared = ReferenceCache()
    private let lock = NSLock()
    private var results: [String: ModelEvaluator.Result] = [:]

    func value(for key: String, _ compute: () -> ModelEvaluator.Result) -> ModelEvaluator.Result {
        lock.lock()
        if let r = results[key] {
            lock.unlock()
            return r
        }
        lock.unlock()
        let r = compute()
        lock.lock()
        results[key] = r
        lock.unlock()
        return r
    }
}
