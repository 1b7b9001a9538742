import LetheRuns
import Foundation
import LetheData
import LetheJSON
import LetheModels
import LetheSpec
import LetheTensor

/// Completion quality on held-out images: PSNR over the hidden pixels, for the model and for the
/// baseline that fills the hole with the mean of the visible pixels.
struct CompletionEvaluation {
    var masked: Tensor<Float>, truth: Tensor<Float>, completed: Tensor<Float>
    var psnrModel: Double, psnrMeanFill: Double, images: Int

    var json: JSONValue {
        .object(
            JSONObject([
                ("images", .integer(images)),
                (
                    "psnr_hidden_region",
                    .object(JSONObject([("model", .number(psnrModel)), ("mean_fill_baseline", .number(psnrMeanFill))]))
                ),
            ]))
    }

    /// Rows of the sample grid: masked input (hole in grey), ground truth, completion.
    func samples(_ n: Int) -> [Tensor<Float>] {
        let k = min(n, images)
        return [masked, truth, completed].map { $0.slice(axis: 0, 0..<k) }
    }
}

enum Evaluation {
    static func completion(
        _ family: any ModelFamily, test: LabeledImages, indices: [Int], size: Int, task: MaskTransform, rng: Philox
    ) -> CompletionEvaluation {
        var rng = rng
        var masked: [Tensor<Float>] = []
        var truth: [Tensor<Float>] = []
        var completed: [Tensor<Float>] = []
        var psnrModel = 0.0
        var psnrMean = 0.0
        for start in stride(from: 0, to: indices.count, by: 64) {
            let chunk = Array(indices[start..<min(indices.count, start + 64)])
            let x = test.tensor(chunk, size: size)
            let hidden = task.hidden(size: size, rng: &rng)
            let y = family.complete(x, hidden: hidden, rng: &rng)
            let plane = x.shape[1] * size * size
            for i in 0..<chunk.count {
                var visibleSum = 0.0
                var visibleCount = 0.0
                var errModel = 0.0
                var errMean = 0.0
                var hiddenCount = 0.0
                for p in 0..<plane where !hidden[p % (size * size)] {
                    visibleSum += Double(x.storage[i * plane + p])
                    visibleCount += 1
                }
                let fill = visibleCount > 0 ? visibleSum / visibleCount : 0.5
                for p in 0..<plane where hidden[p % (size * size)] {
                    let t = Double(x.storage[i * plane + p])
                    errModel += (Double(y.storage[i * plane + p]) - t) * (Double(y.storage[i * plane + p]) - t)
                    errMean += (fill - t) * (fill - t)
                    hiddenCount += 1
                }
                psnrModel += psnr(errModel / max(1, hiddenCount))
                psnrMean += psnr(errMean / max(1, hiddenCount))
            }
            masked.append(MaskTransform.apply(x, hidden: [hidden], fill: 0.5))
            truth.append(x)
            completed.append(y)
        }
        let n = Double(indices.count)
        return CompletionEvaluation(
            masked: Tensor.concat(masked, axis: 0), truth: Tensor.concat(truth, axis: 0),
            completed: Tensor.concat(completed, axis: 0), psnrModel: psnrModel / n, psnrMeanFill: psnrMean / n,
            images: indices.count)
    }

    /// Peak signal-to-noise ratio for images in [0, 1], capped at 100 dB for a perfect match.
    static func psnr(_ mse: Double) -> Double { mse <= 1e-10 ? 100 : 10 * log10(1 / mse) }
}

/// Measures models on held-out test images of the retain and the forget classes: completion of T(x)
/// against the ground truth by FID, IS and embedding cosine in the feature classifier's space, PSNR
/// of the hidden region, SSIM, and the classifier's accuracy on the completed images.
struct ModelEvaluator {
    struct Split {
        var name: String
        var indices: [Int]
    }
    struct Result {
        var completions: [String: CompletionEvaluation] = [:]
        /// Classifier features of the completed images, per split (rows of `featureWidth`).
        var features: [String: [Float]] = [:]
        var featureWidth = 0
        var metrics = JSONObject()
    }

    let test: LabeledImages
    let size: Int
    let task: MaskTransform
    let rng: Philox
    let splits: [Split]
    let classifier: FeatureClassifier<Float>?
    let metrics: Set<String>
    private var truthFeatures: [String: [Float]] = [:]

    init(
        test: LabeledImages, size: Int, task: MaskTransform, rng: Philox, splits: [Split],
        classifier: FeatureClassifier<Float>?, metrics: [String]
    ) {
        (self.test, self.size, self.task, self.rng, self.splits, self.classifier) = (
            test, size, task, rng, splits, classifier
        )
        self.metrics = Set(metrics)
        if let classifier {
            for split in splits {
                truthFeatures[split.name] = GradMode.withoutGrad {
                    Self.features(classifier, test.tensor(split.indices, size: size))
                }
            }
        }
    }

    static func features(_ classifier: FeatureClassifier<Float>, _ x: Tensor<Float>) -> [Float] {
        stride(from: 0, to: x.shape[0], by: 500).flatMap {
            classifier.features(x.slice(axis: 0, $0..<min(x.shape[0], $0 + 500))).storage
        }
    }

    /// Every split completed by `family` with the same masks and draws, and measured.
    func evaluate(_ family: any ModelFamily) -> Result {
        var result = Result()
        for split in splits {
            let c = GradMode.withoutGrad {
                Evaluation.completion(
                    family, test: test, indices: split.indices, size: size, task: task, rng: rng.split(split.name))
            }
            result.completions[split.name] = c
            var m = JSONObject()
            if metrics.contains("psnr") { m["psnr"] = .number(c.psnrModel) }
            if metrics.contains("ssim") { m["ssim"] = .number(Metrics.ssim(c.completed, c.truth)) }
            if let classifier, let truth = truthFeatures[split.name] {
                let d = classifier.featureWidth
                let classes = classifier.classes
                let generated = GradMode.withoutGrad { Self.features(classifier, c.completed) }
                result.features[split.name] = generated
                result.featureWidth = d
                let probabilities = GradMode.withoutGrad {
                    classifier.logits(features: Tensor(generated, shape: [split.indices.count, d])).softmax().storage
                }
                if metrics.contains("fid") {
                    m["fid"] = split.indices.count > 1 ? .number(Metrics.fid(generated, truth, d: d)) : .null
                }
                if metrics.contains("is") { m["is"] = .number(Metrics.inceptionScore(probabilities, classes: classes)) }
                if metrics.contains("cosine") { m["cosine"] = .number(Metrics.meanCosine(generated, truth, d: d)) }
                if metrics.contains("accuracy") {
                    m["accuracy"] = .number(
                        Metrics.accuracy(probabilities, classes: classes, labels: split.indices.map { test.labels[$0] })
                    )
                }
            }
            result.metrics[split.name] = .object(m)
        }
        return result
    }

    /// The mean-fill baseline's PSNR per split, from any result.
    func meanFill(_ r: Result) -> JSONValue {
        .object(
            JSONObject(
                splits.map {
                    ($0.name, .object(JSONObject([("psnr", .number(r.completions[$0.name]?.psnrMeanFill ?? .nan))])))
                }))
    }
}
