import Foundation
import LetheData
import LetheJSON
import LetheModels
import LetheRuns
import LetheSpec
import LetheTensor
import Testing

@testable import LetheUnlearn

/// The method's details as the paper and the authors' code have them (issue 15, items 1-6).
@Suite struct MethodFidelityTests {
    static func tinyMAE(seed: UInt64 = 3) -> MAEFamily {
        var c = MAEConfig()
        (c.width, c.depth, c.heads, c.decoderWidth, c.decoderDepth, c.decoderHeads) = (16, 1, 2, 8, 1, 2)
        var rng = Philox(seed: seed)
        return MAEFamily(model: MAE(c, rng: &rng), pretrainMaskRatio: 0.75)
    }

    static let leakMasks: [(String, [Bool])] = {
        var rng = Philox(seed: 11)
        var out: [(String, [Bool])] = []
        for ratio in [0.0625, 0.1, 0.25, 0.3, 0.5] {
            out.append(
                ("center_crop \(ratio)", MaskTransform(kind: .centerCrop, ratio: ratio).hidden(size: 32, rng: &rng)))
        }
        for ratio in [0.3, 0.75] {
            out.append(("outpaint \(ratio)", MaskTransform(kind: .outpaint, ratio: ratio).hidden(size: 32, rng: &rng)))
        }
        for k in 0..<4 {
            out.append(
                ("random_box \(k)", MaskTransform(kind: .randomBox, ratio: 0.2).hidden(size: 32, rng: &rng)))
            out.append(
                ("random box of a range \(k)", RandomMask(kind: .box, ratio: 0.1...0.6).hidden(size: 32, rng: &rng)))
        }
        return out
    }()

    /// Item 1: whatever the hidden pixels hold, the MAE's embedding and completion are the same, for
    /// masks that do and do not align with its 4x4 patches.
    @Test func theMAEsHoleDoesNotLeakIntoItsEncoder() {
        let family = Self.tinyMAE()
        var rng = Philox(seed: 5)
        let x = Tensor<Float>.uniform([3, 1, 32, 32], 0, 1, rng: &rng)
        let other = Tensor<Float>.uniform([3, 1, 32, 32], 0, 1, rng: &rng)
        for (name, hidden) in Self.leakMasks {
            // Same visible pixels, different hidden ones.
            let changed = Families.composite(x, other, hidden: hidden)
            var r1 = Philox(seed: 1)
            var r2 = Philox(seed: 1)
            let e1 = family.embed(x, hidden: hidden, rng: &r1)[0].storage
            let e2 = family.embed(changed, hidden: hidden, rng: &r2)[0].storage
            #expect(e1 == e2, "\(name): the embedding reads hidden pixels")
            let c1 = family.complete(x, hidden: hidden, rng: &r1)
            let c2 = family.complete(changed, hidden: hidden, rng: &r2)
            let pixels = 32 * 32
            let hiddenOnly = (0..<c1.count).filter { hidden[$0 % pixels] }
            #expect(
                hiddenOnly.allSatisfy { c1.storage[$0] == c2.storage[$0] },
                "\(name): the completion reads hidden pixels")
            let visibleOnly = (0..<c1.count).filter { !hidden[$0 % pixels] }
            #expect(visibleOnly.allSatisfy { c1.storage[$0] == x.storage[$0] }, "\(name): a visible pixel changed")
        }
    }

    /// Item 2: the schedules the schema offers leave x_T pure noise; hand-computed betas.
    @Test func diffusionSchedulesEndInPureNoise() throws {
        let scaled = DiffusionProcess.betas(timesteps: 2, betaStart: 1e-4, betaEnd: 0.02, schedule: .scaledLinear)
        #expect(abs(scaled[0] - 0.05) < 1e-15 && abs(scaled[1] - 0.999) < 1e-15, "1000/T = 500 times, clipped at 0.999")
        let linear = DiffusionProcess(timesteps: 100, betaStart: 1e-4, betaEnd: 0.02, schedule: .linear)
        #expect(abs(linear.finalAlphaBar - 0.364) < 0.001, "the old default left alpha-bar_T = 0.36")
        for t in [20, 50, 100, 250, 1000] {
            for schedule in [DiffusionProcess.Schedule.scaledLinear, .cosine] {
                let p = DiffusionProcess(timesteps: t, betaStart: 1e-4, betaEnd: 0.02, schedule: schedule)
                #expect(p.finalAlphaBar < DiffusionProcess.maximumFinalAlphaBar, "\(schedule) over \(t) steps")
                #expect(zip(p.alphaBar, p.alphaBar.dropFirst()).allSatisfy { $0 > $1 }, "alpha-bar falls")
            }
        }
        // Cosine: alpha-bar_t = f(t + 1) / f(0), f(t) = cos^2((t / T + s) / (1 + s) pi / 2).
        let cosine = DiffusionProcess(timesteps: 10, betaStart: 0, betaEnd: 0, schedule: .cosine)
        func f(_ t: Double) -> Double { pow(cos((t / 10 + 0.008) / 1.008 * Double.pi / 2), 2) }
        #expect(abs(cosine.alphaBar[3] - f(4) / f(0)) < 1e-12)
    }

    /// Item 2: a spec whose schedule leaves x_0 in x_T is refused before anything runs, naming the field.
    @Test func aScheduleThatLeavesTheImageInXTIsRefused() throws {
        let base = scratch()
        try """
        version: 1
        kind: pretrain
        data: {dataset: fashion-mnist, per_class_limit: 2}
        model: {architecture: diffusion, diffusion: {beta_schedule: linear}}
        train: {steps: 1, batch_size: 2}
        """.write(toFile: base + "/d.yaml", atomically: true, encoding: .utf8)
        let plan = try Planner(workingDirectory: base).plan(specPath: base + "/d.yaml")
        #expect {
            _ = try Pretrainer(plan: plan, threads: 1).run()
        } throws: { error in
            "\(error)".contains("model.diffusion") && "\(error)".contains("alpha-bar_T = 0.364")
        }
    }

    static func tinyDiffusion() -> DiffusionFamily {
        var c = DiffusionConfig()
        (c.levels, c.timeEmbedding, c.groups) = ([8, 8], 16, 4)
        var rng = Philox(seed: 2)
        return DiffusionFamily(model: UNet(c, rng: &rng), sampler: .ddim, samplingSteps: 4)
    }

    /// Item 3: `target: xt` puts the noise itself in the hole as x_t, at the student's timestep;
    /// `x0` diffuses a pixel-space noise image like a clean one.
    @Test func diffusionForgetTargets() {
        let family = Self.tinyDiffusion()
        var rng = Philox(seed: 4)
        let xf = Tensor<Float>.uniform([2, 1, 32, 32], 0, 1, rng: &rng)
        let n = Tensor<Float>.randn([2, 1, 32, 32], rng: &rng)
        let hidden = MaskTransform(kind: .centerCrop, ratio: 0.25).hidden(size: 32, rng: &rng)
        let draws = Philox(seed: 9)
        var a = draws
        let xt = family.noiseEmbedding(forget: xf, noise: n, hidden: hidden, target: .xt, rng: &a)
        var b = draws
        let d = family.draw(xf, hidden: hidden, rng: &b)
        let m = family.holeMask(hidden, xf)
        let expected = family.model.encode(
            n * m + (xf * 2 - 1) * (1 - m), condition: (xf * 2 - 1) * (1 - m),
            emb: family.model.timestepEmbedding(d.timesteps))
        #expect(zip(xt, expected).allSatisfy { $0.storage == $1.storage }, "x_t is the noise in the hole")
        var c = draws
        let x0 = family.noiseEmbedding(forget: xf, noise: n, hidden: hidden, target: .x0, rng: &c)
        var e = draws
        let viaImage = family.embed(Families.composite(xf, n, hidden: hidden), hidden: hidden, rng: &e)
        #expect(zip(x0, viaImage).allSatisfy { $0.storage == $1.storage })
        #expect(xt[0].storage != x0[0].storage)
    }

    /// Item 3: `space: standardized` draws N(0, I) in standardised coordinates: pixels then have the
    /// training images' per-channel mean and std.
    @Test func standardizedNoiseHasTheDatasSpread() throws {
        var rng = Philox(seed: 8)
        let images = Tensor<Float>.uniform([200, 1, 8, 8], 0.2, 0.4, rng: &rng)
        let spec = try RunSpecSchema.embedded.resolvedNoise(
            .object(JSONObject([("space", .string("standardized"))])))
        let model = try NoiseModel(spec, trainingImages: { images })
        let (mean, std) = NoiseModel.channelStatistics(images)
        let sample = try model.sample(like: Tensor<Float>(zeros: [400, 1, 8, 8]), rng: &rng)
        let (m, s) = NoiseModelTests.moments(sample.storage)
        #expect(abs(m - mean[0]) < 0.003 && abs(s - std[0]) < 0.003, "\(m) \(s) vs \(mean[0]) \(std[0])")
        #expect(abs(Double(mean[0]) - 0.3) < 0.01 && abs(Double(std[0]) - 0.2 / 12.0.squareRoot()) < 0.005)
    }

    /// Item 4: per_batch noise takes the mixed retain + forget batch's statistics by default.
    @Test func perBatchNoiseOverTheMixedBatch() throws {
        var rng = Philox(seed: 3)
        let xf = Tensor<Float>(repeating: 0.9, shape: [64, 1, 8, 8])
        let xr = Tensor<Float>(repeating: 0.1, shape: [64, 1, 8, 8])
        let mixed = try NoiseModel(
            RunSpecSchema.embedded.resolvedNoise(
                .object(JSONObject([("covariance", .string("per_batch")), ("clamp", .null)]))))
        let (m, s) = NoiseModelTests.moments(try mixed.sample(like: xf, retain: xr, rng: &rng).storage)
        #expect(abs(m - 0.5) < 0.01 && abs(s - 0.4) < 0.01, "mean 0.5, std 0.4 over both halves: \(m) \(s)")
        let forgetOnly = try NoiseModel(
            RunSpecSchema.embedded.resolvedNoise(
                .object(
                    JSONObject([
                        ("covariance", .string("per_batch")), ("clamp", .null), ("per_batch_over", .string("forget")),
                    ]))))
        let f = try forgetOnly.sample(like: xf, retain: xr, rng: &rng).storage
        #expect(f.allSatisfy { abs($0 - 0.9) < 1e-3 }, "the forget batch is constant 0.9: \(f.min()!)...\(f.max()!)")
    }

    /// Item 4: a whole-model baseline never trains the MAE's fixed sin-cos position embeddings.
    @Test func fixedBuffersStayFrozenWhenTheWholeModelTrains() {
        let family = Self.tinyMAE()
        family.module.setTrainable(true)
        let buffers = family.module.namedBuffers().map(\.path)
        #expect(buffers == ["pos_embed", "decoder_pos_embed"])
        #expect(family.module.namedBuffers().allSatisfy { !$0.tensor.requiresGrad })
        #expect(family.module.namedParameters().filter { $0.tensor.requiresGrad }.count > 10)
        #expect(family.module.stateDict().tensors.contains { $0.0 == "pos_embed" }, "buffers are saved")
    }

    /// Item 5: the unlearning mask is drawn per step from its range, aligned to its cells.
    @Test func randomUnlearningMasks() {
        var rng = Philox(seed: 6)
        let patches = RandomMask(kind: .patches(size: 4), ratio: 0.25...0.75)
        var shares: [Double] = []
        for _ in 0..<200 {
            let h = patches.hidden(size: 32, rng: &rng)
            shares.append(Double(h.filter { $0 }.count) / 1024)
            // every 4x4 cell is all hidden or all visible
            for cy in 0..<8 {
                for cx in 0..<8 {
                    let cell = (0..<16).map { h[(cy * 4 + $0 / 4) * 32 + cx * 4 + $0 % 4] }
                    #expect(Set(cell).count == 1)
                }
            }
        }
        #expect(shares.min()! >= 0.25 && shares.max()! <= 0.75 && shares.max()! - shares.min()! > 0.4)
        let box = RandomMask(kind: .box, ratio: 0.1...0.2)
        for _ in 0..<50 {
            let share = Double(box.hidden(size: 32, rng: &rng).filter { $0 }.count) / 1024
            #expect(share > 0.08 && share < 0.23)
        }
        var a = Philox(seed: 1)
        var b = Philox(seed: 1)
        #expect(patches.hidden(size: 32, rng: &a) == patches.hidden(size: 32, rng: &b), "seeded")
    }

    /// Item 6: the quantised embedding moves only in codebook steps, and the code-change share counts
    /// changed hole codes.
    @Test func vqganQuantizedEmbeddingAndCodeChange() {
        var c = VQGANConfig()
        (c.levels, c.codebookSize, c.codebookDim) = ([8, 8], 16, 4)
        var rng = Philox(seed: 7)
        let model = VQGAN<Float>(c, rng: &rng)
        let continuous = VQAutoencoderFamily(model: model, embedding: .continuous)
        let quantized = VQAutoencoderFamily(model: model, embedding: .quantized)
        let x = Tensor<Float>.uniform([2, 1, 32, 32], 0, 1, rng: &rng)
        let hidden = MaskTransform(kind: .centerCrop, ratio: 0.25).hidden(size: 32, rng: &rng)
        let q = quantized.embed(x, hidden: hidden, rng: &rng)[0]
        let z = continuous.embed(x, hidden: hidden, rng: &rng)[0]
        #expect(q.shape == z.shape && q.storage != z.storage)
        // Each latent cell is its code's codebook row (up to the straight-through rounding).
        let (_, indices, _) = model.quantize(z)
        let book = model.quantize.embedding.weight.storage
        let (dim, cells) = (c.codebookDim, q.shape[2] * q.shape[3])
        for b in 0..<2 {
            for cell in 0..<cells {
                for k in 0..<dim {
                    let v = q.storage[(b * dim + k) * cells + cell]
                    #expect(abs(v - book[indices[b * cells + cell] * dim + k]) < 1e-5)
                }
            }
        }
        let codes = quantized.holeCodes(x, hidden: hidden)!
        // 32x32 image, 8x8 latent grid (two halvings): the centre 16x16 hole touches 4x4 cells.
        #expect(codes.count == 2 && codes[0].count == 16)
        #expect(Metrics.changedShare([[1, 2, 3, 4]], [[1, 2, 0, 0]]) == 0.5)
        #expect(Metrics.changedShare(codes, codes) == 0)
    }
}

/// Items 4 (MAX LOSS, RETAIN LABEL) on the one-parameter model, by hand.
@Suite struct BaselineFidelityTests {
    /// ScaleFamily with a VQ-like auxiliary loss of 10.
    struct AuxFamily: ModelFamily {
        let base: ScaleFamily
        var module: Module<Float> { base.module }
        var encoderParameters: [Tensor<Float>] { base.encoderParameters }
        func trainingLoss(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
            base.trainingLoss(x, hidden: hidden, rng: &rng)
        }
        func complete(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> { base.scaled(x) }
        func embed(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> [Tensor<Float>] { [base.scaled(x)] }
        func taskPrediction(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> TaskPrediction {
            TaskPrediction(prediction: base.scaled(x), label: x, weight: nil, auxiliary: Tensor([10], shape: [1]))
        }
    }

    let xr = Tensor<Float>([1, 2, 3, 4], shape: [2, 1, 1, 2]), xf = Tensor<Float>([1, 1, 2, 0], shape: [2, 1, 1, 2])
    let noise = Tensor<Float>(repeating: 0.5, shape: [2, 1, 1, 2])

    @Test func maxLossAscendsTheReconstructionTermOnly() {
        let student = AuxFamily(base: ScaleFamily(model: ScaleModel(2)))
        let teacher = AuxFamily(base: ScaleFamily(model: ScaleModel(1)))
        let t = UnlearningMethod.maxLoss.terms(
            student: student, teacher: teacher, retain: xr, forget: xf, noise: noise, hidden: [true, true],
            draws: Philox(seed: 1), objective: Objective(alpha: 0.5, distance: .mse, normalize: false))
        // retain: 7.5 + 10 (its own loss, VQ term included); forget: 1.5 without the VQ term.
        #expect(t.retain.scalar == 17.5 && t.forget.scalar == 1.5 && t.total.scalar == 17.5 - 0.75)
    }

    @Test func retainLabelDistilsToTheTeacherByDefault() {
        let student = ScaleFamily(model: ScaleModel(2))
        let teacher = ScaleFamily(model: ScaleModel(0.5))
        func retain(_ term: UnlearnSpec.RetainTerm?) -> Float {
            var o = Objective(alpha: 0.5, distance: .mse, normalize: false)
            o.retainTerm = term
            return UnlearningMethod.retainLabel.terms(
                student: student, teacher: teacher, retain: xr, forget: xf, noise: noise, hidden: [true, true],
                draws: Philox(seed: 1), objective: o
            ).retain.scalar
        }
        // teacher: mean((2x - 0.5x)^2) = 2.25 * 30 / 4; ground truth: mean((2x - x)^2) = 30 / 4.
        #expect(retain(nil) == 2.25 * 7.5 && retain(.teacher) == 2.25 * 7.5)
        #expect(retain(.groundTruth) == 7.5)
    }
}

/// Items 8-11: statistics, by hand where they are arithmetic.
@Suite struct StatisticsTests {
    @Test func percentileIntervalInterpolates() {
        let values = (0...100).map(Double.init).reversed()
        let (lo, hi) = Statistics.percentileInterval(Array(values))
        #expect(lo == 2.5 && hi == 97.5)
    }

    @Test func bootstrapWeightsAreResamplesAndSeeded() {
        let w = Statistics.weights(n: 50, resample: 3, rng: Philox(seed: 1))
        #expect(w.reduce(0, +) == 50 && w.allSatisfy { $0 == $0.rounded() })
        #expect(w == Statistics.weights(n: 50, resample: 3, rng: Philox(seed: 1)))
        #expect(w != Statistics.weights(n: 50, resample: 4, rng: Philox(seed: 1)))
    }

    @Test func meanIntervalCoversTheMeanAndShrinksWithN() {
        var rng = Philox(seed: 2)
        let small = (0..<50).map { _ in rng.normal() }
        let large = (0..<2000).map { _ in rng.normal() }
        let a = Statistics.mean(small, resamples: 1000, rng: Philox(seed: 3))
        let b = Statistics.mean(large, resamples: 1000, rng: Philox(seed: 3))
        #expect(a.interval!.lo < a.value && a.value < a.interval!.hi)
        let widthA = a.interval!.hi - a.interval!.lo
        let widthB = b.interval!.hi - b.interval!.lo
        // 95% of a normal mean: 2 * 1.96 / sqrt(n)
        #expect(abs(widthA - 3.92 / 50.0.squareRoot()) < 0.15 && abs(widthB - 3.92 / 2000.0.squareRoot()) < 0.02)
        #expect(Statistics.mean(small, resamples: 0, rng: Philox(seed: 3)).interval == nil)
    }

    @Test func lapackFIDAgreesWithTheJacobiReference() {
        var rng = Philox(seed: 5)
        let d = 6
        let a = (0..<(300 * d)).map { _ in Float(rng.normal()) }
        let b = (0..<(300 * d)).map { i in Float(rng.normal()) * 1.5 + Float(i % d) * 0.1 }
        let (ma, sa) = Linalg.meanAndCovariance(a, rows: 300, d: d)
        let (mb, sb) = Linalg.meanAndCovariance(b, rows: 300, d: d)
        // The reference: Jacobi square root.
        let root = Linalg.symmetricSqrt(sa, n: d)
        let middle = Linalg.multiply(Linalg.multiply(root, sb, n: d), root, n: d)
        let trace = Linalg.symmetricEigen(middle, n: d).values.reduce(0) { $0 + max(0, $1).squareRoot() }
        let expected =
            zip(ma, mb).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            + (0..<d).reduce(0) {
                $0 + sa[$1 * d + $1] + sb[$1 * d + $1]
            } - 2 * trace
        #expect(abs(Metrics.fid(a, b, d: d) - expected) < 1e-9)
        // With unit weights the bootstrap statistic is the point FID (its Gram products are single
        // precision: agreement to 1e-5 relative).
        let w = [Double](repeating: 1, count: 300)
        #expect(abs(Statistics.fid(.init(a, d: d), .init(b, d: d), weights: w) - expected) < 1e-5 * expected)
    }

    @Test func kidOfTinySetsByHand() {
        // d = 1, subsets of all 2 points: x = {0, 1}, y = {1, 2}; k(u, v) = (u v + 1)^3.
        // within x: 2 k(0,1) / 2 = 1; within y: k(1,2) = 27; across: (k(0,1) + k(0,2) + k(1,1) + k(1,2)) / 4 = (1 + 1 + 8 + 27) / 4
        let (mean, std) = Statistics.kid([0, 1], [1, 2], d: 1, subsets: 3, size: 2, rng: Philox(seed: 1))
        #expect(abs(mean - (1 + 27 - 2 * 37.0 / 4)) < 1e-12 && std == 0)
        // A subset size as large as the sets is cut to half of them, so the subsets differ.
        var r = Philox(seed: 4)
        let x = (0..<40).map { _ in Float(r.normal()) }
        let y = (0..<40).map { _ in Float(r.normal()) + 0.5 }
        #expect(Statistics.kid(x, y, d: 1, subsets: 10, size: 1000, rng: Philox(seed: 1)).std > 0)
        var rng = Philox(seed: 2)
        // 200 rows of d = 2 each: two draws of one Gaussian, and one shifted by 1 in both coordinates.
        let same = (0..<800).map { _ in Float(rng.normal()) }
        let other = (0..<400).map { _ in Float(rng.normal()) + 1 }
        let near = Statistics.kid(
            Array(same[0..<400]), Array(same[400..<800]), d: 2, subsets: 20, size: 50, rng: Philox(seed: 3))
        let far = Statistics.kid(Array(same[0..<400]), other, d: 2, subsets: 20, size: 50, rng: Philox(seed: 3))
        #expect(
            abs(near.mean) < 3 * near.std + 1e-3 && far.mean > 2 * far.std && far.mean > 10 * abs(near.mean),
            "\(near) \(far)")
    }

    @Test func budgetProbeVerdict() {
        let probes: [(step: Int, psnr: Double)] = [(0, 7), (50, 12), (80, 13.9), (90, 13.95), (100, 13.98)]
        let j = BudgetProbe.json(probes, steps: 100)
        #expect(abs(j["gain_last_fifth_db"]!.doubleValue! - 0.08) < 1e-12 && j["converged"] == .bool(true))
        let still: [(step: Int, psnr: Double)] = [(0, 7), (80, 12), (100, 12.5)]
        #expect(BudgetProbe.json(still, steps: 100)["converged"] == .bool(false))
    }
}
