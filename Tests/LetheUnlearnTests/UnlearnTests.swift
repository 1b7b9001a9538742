import Foundation
import Testing
import LetheJSON
import LetheSpec
import LetheTensor
import LetheModels
@testable import LetheUnlearn
import LetheRuns

@Suite struct ObjectiveTests {
    let a = Tensor<Float>([1, 2, 3, 4], shape: [2, 2]), b = Tensor<Float>([1, 0, 0, 0], shape: [2, 2])

    @Test func mseIsTheMeanOverEveryElement() {
        // (0 + 4 + 9 + 16) / 4
        #expect(Objective(alpha: 0.25, distance: .mse, normalize: false).one(a, b).scalar == 7.25)
    }

    @Test func l2IsThePerSampleNormAveraged() {
        // sample 0: |(0, 2)| = 2; sample 1: |(3, 4)| = 5
        #expect(abs(Objective(alpha: 0.25, distance: .l2, normalize: false).one(a, b).scalar - 3.5) < 1e-5)
    }

    @Test func normalisedEmbeddingsCompareDirectionsOnly() {
        let scaled = a * 10
        #expect(Objective(alpha: 1, distance: .mse, normalize: true).one(scaled, a).scalar < 1e-10)
        // unit (1,2)/sqrt5 vs (1,0): squared distance 2 - 2/sqrt5; unit (3,4)/5 vs (0,0): 1 (b's row is zero, stays ~zero).
        let expected = ((2 - 2 / Float(5).squareRoot()) + (9 + 16) / 25 + 0) / 4
        #expect(abs(Objective(alpha: 1, distance: .mse, normalize: true).one(a, b).scalar - expected) < 1e-5)
    }

    @Test func featureMapsAreSummed() {
        let o = Objective(alpha: 1, distance: .mse, normalize: false)
        #expect(o.distance([a, a], [b, b]).scalar == 14.5)
    }
}

@Suite struct NoiseModelTests {
    func noise(_ yaml: String, like x: Tensor<Float>) throws -> [Float] {
        var rng = Philox(seed: 3)
        let spec = try YAMLLoader.loadDocument(Array(yaml.utf8), file: "n").toJSON().0
        return try NoiseModel(spec).sample(like: x, rng: &rng).storage
    }

    static func moments(_ v: [Float]) -> (Float, Float) {
        let m = v.reduce(0, +) / Float(v.count)
        return (m, (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(v.count)).squareRoot())
    }

    @Test func isotropicNoiseHasTheGivenMeanAndSigma() throws {
        let x = Tensor<Float>(zeros: [8, 1, 32, 32])
        let (m, s) = Self.moments(try noise("{covariance: isotropic, mean: 0.5, sigma: 2}", like: x))
        #expect(abs(m - 0.5) < 0.05 && abs(s - 2) < 0.05)
    }

    @Test func perBatchNoiseFollowsTheBatchAndIsClamped() throws {
        var rng = Philox(seed: 1)
        let x = Tensor<Float>.uniform([8, 1, 32, 32], 0.2, 0.6, rng: &rng)
        let (bm, bs) = Self.moments(x.storage)
        let n = try noise("{covariance: per_batch, mean: estimate, clamp: [-10, 10]}", like: x)
        let (m, s) = Self.moments(n)
        #expect(abs(m - bm) < 0.01 && abs(s - bs) < 0.01)
        let clamped = try noise("{covariance: per_batch, mean: estimate, clamp: [0, 1]}", like: x)
        #expect(clamped.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    /// Images of two pixels whose values are correlated: pixel 1 = 0.5 * pixel 0 + small noise.
    static func correlatedImages(_ n: Int) -> Tensor<Float> {
        var rng = Philox(seed: 9)
        var v: [Float] = []
        for _ in 0..<n {
            let a = Float(rng.normal()) * 2 + 1
            v += [a, 0.5 * a + Float(rng.normal()) * 0.1 + 3]
        }
        return Tensor(v, shape: [n, 1, 1, 2])
    }

    static func covariance(_ v: [Float]) -> (m0: Double, m1: Double, c00: Double, c01: Double, c11: Double) {
        let n = v.count / 2
        let m0 = (0..<n).reduce(0.0) { $0 + Double(v[2 * $1]) } / Double(n)
        let m1 = (0..<n).reduce(0.0) { $0 + Double(v[2 * $1 + 1]) } / Double(n)
        var c = (0.0, 0.0, 0.0)
        for i in 0..<n {
            let a = Double(v[2 * i]) - m0
            let b = Double(v[2 * i + 1]) - m1
            c.0 += a * a / Double(n - 1)
            c.1 += a * b / Double(n - 1)
            c.2 += b * b / Double(n - 1)
        }
        return (m0, m1, c.0, c.1, c.2)
    }

    @Test func fullCovarianceEstimatedFromTheForgetSetIsReproducedBySamples() throws {
        let data = Self.correlatedImages(4000)
        let model = try NoiseModel(
            .object(
                JSONObject([("covariance", .string("full")), ("mean", .string("estimate")), ("shrinkage", .number(0))])),
            forgetImages: { data })
        var rng = Philox(seed: 4)
        let s = Self.covariance(try model.sample(like: Tensor<Float>(zeros: [20000, 1, 1, 2]), rng: &rng).storage)
        // data: var 4, cov 2, var 1 + 0.01, means 1 and 3.5
        #expect(abs(s.m0 - 1) < 0.06 && abs(s.m1 - 3.5) < 0.04)
        #expect(abs(s.c00 - 4) < 0.2 && abs(s.c01 - 2) < 0.1 && abs(s.c11 - 1.01) < 0.06)
    }

    @Test func diagonalCovarianceKeepsVariancesAndDropsCorrelation() throws {
        let data = Self.correlatedImages(4000)
        let model = try NoiseModel(
            .object(
                JSONObject([
                    ("covariance", .string("diagonal")), ("mean", .string("estimate")), ("shrinkage", .number(0)),
                ])),
            forgetImages: { data })
        var rng = Philox(seed: 5)
        let s = Self.covariance(try model.sample(like: Tensor<Float>(zeros: [20000, 1, 1, 2]), rng: &rng).storage)
        #expect(abs(s.c00 - 4) < 0.2 && abs(s.c11 - 1.01) < 0.06 && abs(s.c01) < 0.06)
    }

    @Test func givenFullMatrixIsUsedAsIs() throws {
        let spec = try YAMLLoader.loadDocument(
            Array("{covariance: full, mean: 0, matrix: [[1, 0.8], [0.8, 1]]}".utf8), file: "n"
        ).toJSON().0
        var rng = Philox(seed: 6)
        let s = Self.covariance(
            try NoiseModel(spec).sample(like: Tensor<Float>(zeros: [20000, 1, 1, 2]), rng: &rng).storage)
        #expect(abs(s.c00 - 1) < 0.05 && abs(s.c01 - 0.8) < 0.05 && abs(s.m0) < 0.03)
    }

    @Test func aCovarianceOfTheWrongSizeIsAClearError() throws {
        let spec = try YAMLLoader.loadDocument(
            Array("{covariance: diagonal, mean: 0, diagonal: [1, 1, 1]}".utf8), file: "n"
        ).toJSON().0
        var rng = Philox(seed: 6)
        #expect { try NoiseModel(spec).sample(like: Tensor<Float>(zeros: [2, 1, 1, 2]), rng: &rng) } throws: {
            "\($0)".contains("3 pixels per image")
        }
    }

    @Test func shrinkageMakesAConstantPixelSampleable() throws {
        // A zero-variance pixel (Fashion-MNIST's padding) has no Cholesky factor without shrinkage.
        let data = Tensor<Float>((0..<200).flatMap { [Float($0 % 7), 0] }, shape: [200, 1, 1, 2])
        #expect(throws: RunError.self) {
            try NoiseModel(
                .object(
                    JSONObject([
                        ("covariance", .string("full")), ("mean", .string("estimate")), ("shrinkage", .number(0)),
                    ])), forgetImages: { data })
        }
        _ = try NoiseModel(
            .object(
                JSONObject([
                    ("covariance", .string("full")), ("mean", .string("estimate")), ("shrinkage", .number(0.01)),
                ])), forgetImages: { data })
    }
}

@Suite struct UnlearnRunTests {
    @Test func oursMovesForgetEmbeddingsAndWritesARunDirectory() throws {
        let base = scratch()
        let model =
            "{architecture: mae, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}"
        try """
        version: 1
        kind: pretrain
        data: {dataset: fashion-mnist, per_class_limit: 8}
        model: \(model)
        train: {steps: 6, batch_size: 8, log_every: 100, optimizer: {name: adam, lr: 3.0e-3}}
        evaluate: {test_per_class: 1}
        """.write(toFile: base + "/pre.yaml", atomically: true, encoding: .utf8)
        try """
        version: 1
        kind: unlearn
        data: {dataset: fashion-mnist, per_class_limit: 8, forget: {classes: [5, 7, 9]}, retain: {classes: [0, 1, 2, 3]}}
        model: {architecture: mae, pretrain: pre.yaml, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}
        unlearn: {method: ours, alpha: 1.0}
        train: {steps: 15, batch_size: 8, forget_batch_size: 8, log_every: 100, optimizer: {name: adam, lr: 1.0e-2}}
        evaluate: {test_per_class: 2, grid_samples: 4, classifier_steps: 3}
        """.write(toFile: base + "/un.yaml", atomically: true, encoding: .utf8)
        let plan = try Planner(workingDirectory: base).plan(specPath: base + "/un.yaml")
        _ = try Pretrainer(plan: plan.dependencies[0], threads: 1).run()
        let dir = try Unlearner(plan: plan, threads: 1).run()
        let rows = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
            try JSONParser.parse(String($0))
        }
        let forget = rows.compactMap { $0["forget_term"]?.doubleValue }
        let retain = rows.compactMap { $0["retain_term"]?.doubleValue }
        #expect(forget.count == 15 && retain.count == 15)
        #expect(retain[0] < 1e-9, "the student starts as the teacher, so the retain term starts at zero")
        #expect(forget.suffix(3).reduce(0, +) < forget.prefix(3).reduce(0, +), "forget term did not fall: \(forget)")
        let eval = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/eval.json"))))
        for model in ["original", "unlearned"] {
            for split in ["retain", "forget"] {
                for metric in ["fid", "is", "cosine", "psnr", "ssim", "accuracy"] {
                    #expect(
                        eval[model]?[split]?[metric]?.doubleValue?.isFinite == true,
                        "\(model).\(split).\(metric) missing")
                }
            }
        }
        #expect(eval["images"]?["forget"] == .integer(6))
        #expect(RunDirectory.finished(dir))
        let splits = try #require(try RunStore.json(dir, "splits.json"))
        #expect(
            splits["forget"]?["count"] == .integer(24) && splits["retain"]?["count"] == .integer(32),
            "8 per class, classes 5 7 9 and 0-3")
        #expect(
            splits["test_forget"]?["set"] == .string("test")
                && splits["test_forget"]?["indices"]?.arrayValue?.count == 6)
        #expect(try RunRecord(dir).manifest["splits.json"] != nil, "the sample ids are hashed with the run")
        for file in [
            "report.html", "embedding.svg", "curve.svg", "samples.png", "checkpoint.safetensors", "provenance.json",
        ] {
            #expect(FileManager.default.fileExists(atPath: dir + "/" + file), "\(file) missing")
        }
        let html = try String(contentsOfFile: dir + "/report.html", encoding: .utf8)
        #expect(html.contains("data:image/png;base64,") && html.contains("<svg") && html.contains("FID"))
        #expect(
            RunDirectory.finished(plan.stages.first { $0.name == "classifier" }!.runDirectory),
            "the classifier stage ran first")
    }
}

/// A one-parameter model: E(x) = w x, and the I2I output is w x with label x. Each method's terms
/// then have values one can compute by hand.
final class ScaleModel: Module<Float> {
    let w: Tensor<Float>
    init(_ value: Float) {
        w = Tensor([value], shape: [1], requiresGrad: true)
        super.init()
        register("w", w)
    }
}

struct ScaleFamily: ModelFamily {
    let model: ScaleModel
    var module: Module<Float> { model }
    var encoderParameters: [Tensor<Float>] { [model.w] }
    func scaled(_ x: Tensor<Float>) -> Tensor<Float> { x * model.w }
    func trainingLoss(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> { scaled(x).mseLoss(x) }
    func complete(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> { scaled(x) }
    func embed(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> [Tensor<Float>] { [scaled(x)] }
    func taskPrediction(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> TaskPrediction {
        TaskPrediction(prediction: scaled(x), label: x)
    }
}

@Suite struct MethodLossTests {
    // Student w = 2, teacher w = 1; retain rows (1, 2), (3, 4); forget rows (1, 1), (2, 0); noise all 0.5.
    let student = ScaleFamily(model: ScaleModel(2)), teacher = ScaleFamily(model: ScaleModel(1))
    let xr = Tensor<Float>([1, 2, 3, 4], shape: [2, 1, 1, 2]), xf = Tensor<Float>([1, 1, 2, 0], shape: [2, 1, 1, 2])
    let noise = Tensor<Float>(repeating: 0.5, shape: [2, 1, 1, 2])
    let objective = Objective(alpha: 0.5, distance: .mse, normalize: false)

    func terms(_ method: UnlearningMethod) -> (Float, Float, Float) {
        let t = method.terms(
            student: student, teacher: teacher, retain: xr, forget: xf, noise: noise, hidden: [true, true],
            draws: Philox(seed: 1), objective: objective)
        return (t.retain.scalar, t.forget.scalar, t.total.scalar)
    }

    @Test func ours() {
        // retain: mean((2x - x)^2) = mean(x^2) = 30/4; forget: mean((2 xf - 1 * 0.5)^2) = (2.25 + 2.25 + 12.25 + 0.25)/4
        let (r, f, total) = terms(.ours)
        #expect(r == 7.5 && f == 4.25 && total == 7.5 + 0.5 * 4.25)
    }

    @Test func maxLossAscendsOnTheForgetSet() {
        // whole-model loss mean((2x - x)^2): retain 7.5, forget (1 + 1 + 4 + 0)/4 = 1.5; total r - alpha f
        let (r, f, total) = terms(.maxLoss)
        #expect(r == 7.5 && f == 1.5 && total == 7.5 - 0.75)
    }

    @Test func noisyLabelRegressesForgetOutputsOntoNoise() {
        // forget: mean((2 xf - 0.5)^2) = 4.25, as ours here because the teacher is the identity
        let (r, f, total) = terms(.noisyLabel)
        #expect(r == 7.5 && f == 4.25 && total == 7.5 + 0.5 * 4.25)
    }

    @Test func retainLabelRegressesForgetOutputsOntoTheTeachersRetainOutputs() {
        // forget: mean((2 xf - 1 * xr)^2) = ((2-1)^2 + (2-2)^2 + (4-3)^2 + (0-4)^2)/4 = 18/4
        let (r, f, total) = terms(.retainLabel)
        #expect(r == 7.5 && f == 4.5 && total == 7.5 + 0.5 * 4.5)
    }

    @Test func randomEncoderTargetsAGaussianWithTheTeacherEmbeddingsMoments() {
        // The teacher embedding of xf is xf: mean 1, sample std sqrt(2/3). The target g is random; its
        // term is mean((2 xf - g)^2), so it has to exceed the variance part of the student's output.
        let (r, f, total) = terms(.randomEncoder)
        #expect(r == 7.5 && f > 0 && total == r + 0.5 * f)
        let again = terms(.randomEncoder)
        #expect(again.1 == f, "the draws come from the step's seeded stream")
    }

    @Test func onlyTheFineTuningBaselinesTrainTheWholeModel() {
        #expect(UnlearningMethod.allCases.filter(\.trainsWholeModel) == [.maxLoss, .noisyLabel, .retainLabel])
        #expect(throws: RunError.self) { try UnlearningMethod("gradient-ascent") }
    }
}

@Suite struct MethodRunTests {
    /// Every baseline runs end to end on a tiny MAE and writes a finished run with its table row.
    @Test(arguments: ["max-loss", "noisy-label", "retain-label", "random-encoder"])
    func baselineRuns(method: String) throws {
        let base = scratch()
        let model = "{width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}"
        try """
        version: 1
        kind: pretrain
        data: {dataset: fashion-mnist, per_class_limit: 8}
        model: {architecture: mae, mae: \(model)}
        train: {steps: 2, batch_size: 8, log_every: 100}
        evaluate: {test_per_class: 1}
        """.write(toFile: base + "/pre.yaml", atomically: true, encoding: .utf8)
        try """
        version: 1
        kind: unlearn
        data: {dataset: fashion-mnist, per_class_limit: 8, forget: {classes: [5, 7]}, retain: {classes: [0, 1]}}
        model: {architecture: mae, pretrain: pre.yaml, mae: \(model)}
        unlearn: {method: \(method)}
        train: {steps: 2, batch_size: 4, forget_batch_size: 4, log_every: 100}
        evaluate: {test_per_class: 2, metrics: [psnr, ssim]}
        """.write(toFile: base + "/un.yaml", atomically: true, encoding: .utf8)
        let plan = try Planner(workingDirectory: base).plan(specPath: base + "/un.yaml")
        #expect(!plan.stages.contains { $0.name == "classifier" }, "no classifier stage when no metric needs it")
        let dir = try Executor.execute(plan, threads: 1, log: { _ in })
        let eval = try #require(try RunStore.json(dir, "eval.json"))
        #expect(eval["method"]?.stringValue == UnlearningMethod(rawValue: method)!.tableRow(proxy: false))
        #expect(eval["unlearned"]?["forget"]?["ssim"]?.doubleValue != nil)
        let rows = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(rows.count == 2)
    }
}

@Suite struct UserDataRunTests {
    /// A NumPy data set and index-file splits, planned and executed end to end.
    @Test func npzDataWithIndexFileSplitsRuns() throws {
        let base = scratch()
        let npz =
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path
            + "/LetheDataTests/Fixtures/small.npz"
        try "# forget: samples 0, 3 and 6 (class 0)\n0\n3\n6\n".write(
            toFile: base + "/forget.txt", atomically: true, encoding: .utf8)
        try "1\n2\n4\n5\n7\n8\n".write(toFile: base + "/retain.txt", atomically: true, encoding: .utf8)
        let model =
            "{architecture: mae, mae: {patch_size: 2, width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}"
        let data = "{dataset: npz, root: \(npz), image_size: 8"
        try """
        version: 1
        kind: pretrain
        data: \(data)}
        model: \(model)
        train: {steps: 2, batch_size: 4, log_every: 100}
        evaluate: {test_per_class: 1}
        """.write(toFile: base + "/pre.yaml", atomically: true, encoding: .utf8)
        try """
        version: 1
        kind: unlearn
        data: \(data), forget: {index_file: forget.txt}, retain: {index_file: retain.txt}}
        model: {architecture: mae, pretrain: pre.yaml, mae: {patch_size: 2, width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}
        unlearn: {method: ours}
        train: {steps: 2, batch_size: 3, forget_batch_size: 3, log_every: 100}
        evaluate: {test_per_class: 1, classifier_steps: 2}
        """.write(toFile: base + "/un.yaml", atomically: true, encoding: .utf8)
        let plan = try Planner(workingDirectory: base).plan(specPath: base + "/un.yaml")
        #expect(plan.inputs.contains { $0.role == "data.forget.index_file" })
        let dir = try Executor.execute(plan, threads: 1, log: { _ in })
        let eval = try #require(try RunStore.json(dir, "eval.json"))
        // The forget file lists class 0 only: D_F is evaluated on class 0's test image, D_R on classes 1 and 2.
        #expect(eval["images"]?["forget"] == .integer(1) && eval["images"]?["retain"] == .integer(2))
        #expect(eval["unlearned"]?["forget"]?["fid"] != nil)

        try "0\n99\n".write(toFile: base + "/forget.txt", atomically: true, encoding: .utf8)
        let bad = try Planner(workingDirectory: base).plan(specPath: base + "/un.yaml")
        #expect { try Executor.execute(bad, threads: 1, log: { _ in }) } throws: {
            "\($0)".contains("sample 99 is not in the training set")
        }
    }
}

extension NoiseModel {
    /// A noise model from partial `unlearn.noise` settings, completed by the schema's defaults as the
    /// planner completes them.
    init(
        _ json: JSONValue,
        forgetImages: () throws -> Tensor<Float> = { throw RunError("no forget images to estimate the noise from") }
    ) throws {
        try self.init(try RunSpecSchema.embedded.resolvedNoise(json), forgetImages: forgetImages)
    }
}
