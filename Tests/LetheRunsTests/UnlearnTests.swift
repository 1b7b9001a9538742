import Foundation
import Testing
import LetheJSON
import LetheSpec
import LetheTensor
@testable import LetheRuns

@Suite struct ObjectiveTests {
    let a = Tensor<Float>([1, 2, 3, 4], shape: [2, 2]), b = Tensor<Float>([1, 0, 0, 0], shape: [2, 2])

    @Test func mseIsTheMeanOverEveryElement() {
        // (0 + 4 + 9 + 16) / 4
        #expect(Objective(alpha: 0.25, distance: "mse", normalize: false).one(a, b).scalar == 7.25)
    }

    @Test func l2IsThePerSampleNormAveraged() {
        // sample 0: |(0, 2)| = 2; sample 1: |(3, 4)| = 5
        #expect(abs(Objective(alpha: 0.25, distance: "l2", normalize: false).one(a, b).scalar - 3.5) < 1e-5)
    }

    @Test func normalisedEmbeddingsCompareDirectionsOnly() {
        let scaled = a * 10
        #expect(Objective(alpha: 1, distance: "mse", normalize: true).one(scaled, a).scalar < 1e-10)
        // unit (1,2)/sqrt5 vs (1,0): squared distance 2 - 2/sqrt5; unit (3,4)/5 vs (0,0): 1 (b's row is zero, stays ~zero).
        let expected = ((2 - 2 / Float(5).squareRoot()) + (9 + 16) / 25 + 0) / 4
        #expect(abs(Objective(alpha: 1, distance: "mse", normalize: true).one(a, b).scalar - expected) < 1e-5)
    }

    @Test func featureMapsAreSummed() {
        let o = Objective(alpha: 1, distance: "mse", normalize: false)
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

    @Test func estimatedCovariancesSayTheyAreNotBuiltYet() {
        #expect { try NoiseModel(.object(JSONObject([("covariance", .string("full"))]))) } throws: { "\($0)".contains("not built yet") }
    }
}

@Suite struct UnlearnRunTests {
    @Test func oursMovesForgetEmbeddingsAndWritesARunDirectory() throws {
        let base = scratch()
        let model = "{architecture: mae, mae: {width: 16, depth: 1, heads: 2, decoder_width: 8, decoder_depth: 1, decoder_heads: 2}}"
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
        evaluate: {test_per_class: 2, grid_samples: 4}
        """.write(toFile: base + "/un.yaml", atomically: true, encoding: .utf8)
        let plan = try Planner(workingDirectory: base).plan(specPath: base + "/un.yaml")
        _ = try Pretrainer(plan: plan.dependencies[0], threads: 1).run()
        let dir = try Unlearner(plan: plan, threads: 1).run()
        let rows = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { try JSONParser.parse(String($0)) }
        let forget = rows.compactMap { $0["forget_term"]?.doubleValue }, retain = rows.compactMap { $0["retain_term"]?.doubleValue }
        #expect(forget.count == 15 && retain.count == 15)
        #expect(retain[0] < 1e-9, "the student starts as the teacher, so the retain term starts at zero")
        #expect(forget.suffix(3).reduce(0, +) < forget.prefix(3).reduce(0, +), "forget term did not fall: \(forget)")
        let eval = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/eval.json"))))
        #expect(eval["unlearned"]?["forget"]?.doubleValue != nil && eval["original"]?["retain"]?.doubleValue != nil)
        #expect(eval["images"]?["forget"] == .integer(6))
        #expect(RunDirectory.finished(dir))
    }
}
