import Foundation
import LetheData
import LetheModels
import LetheSpec
import LetheTensor
import Testing

@testable import LetheUnlearn

/// MAGE as the executor drives it (issue 16): completion, decoding and every method's loss.
@Suite struct MAGEFamilyTests {
    static func settings(decoding: String = "iterative", steps: Int = 4, temperature: Double = 1) -> ModelSpec.MAGE {
        let json = """
            {"tokenizer": {"channels": [8, 16], "latent_size": 8, "codebook_size": 16, "codebook_dim": 4,
             "commitment": 0.25},
             "width": 16, "depth": 1, "heads": 2, "mlp_ratio": 2, "decoder_width": 8, "decoder_depth": 1,
             "decoder_heads": 2, "mask_ratio": {"min": 0.5, "max": 1.0, "mean": 0.55, "std": 0.25},
             "decoding": "\(decoding)", "decoding_steps": \(steps), "temperature": \(temperature)}
            """
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try! decoder.decode(ModelSpec.MAGE.self, from: Data(json.utf8))
    }

    /// A tiny MAGE on 32x32 images: an 8x8 grid of tokens of 4x4 pixels, 16 codes.
    static func tiny(seed: UInt64 = 5, settings s: ModelSpec.MAGE = settings(), stage: TrainSpec.Stage? = nil)
        -> MAGEFamily
    {
        var c = MAGEConfig()
        c.tokenizer = Families.vqConfig(s.tokenizer, imageSize: 32, channels: 1)
        c.tokenizer.groups = 4
        (c.width, c.depth, c.heads, c.mlpRatio) = (s.width, s.depth, s.heads, s.mlpRatio)
        (c.decoderWidth, c.decoderDepth, c.decoderHeads) = (s.decoderWidth, s.decoderDepth, s.decoderHeads)
        var rng = Philox(seed: seed)
        return MAGEFamily(model: MAGE(c, rng: &rng), settings: s, stage: stage)
    }

    static func images(_ n: Int, seed: UInt64) -> Tensor<Float> {
        var rng = Philox(seed: seed)
        return Tensor<Float>.uniform([n, 1, 32, 32], 0, 1, rng: &rng)
    }

    /// Whatever the hidden pixels hold, the completion is the same, and no visible pixel changes: for
    /// centre crops of several ratios, outpainting and random boxes, one pass and iterative.
    @Test(arguments: ["iterative", "one_pass"])
    func completionNeitherChangesVisiblePixelsNorReadsHiddenOnes(decoding: String) {
        let family = Self.tiny(settings: Self.settings(decoding: decoding))
        let x = Self.images(2, seed: 1)
        var other = Self.images(2, seed: 2)
        for (name, hidden) in MethodFidelityTests.leakMasks {
            let h = Tensor<Float>(hidden.map { $0 ? 1 : 0 }, shape: [1, 1, 32, 32])
            other = x * (1 - h) + other * h  // the same visible pixels, other hidden ones
            var r1 = Philox(seed: 9)
            var r2 = Philox(seed: 9)
            let a = family.complete(x, hidden: hidden, rng: &r1)
            let b = family.complete(other, hidden: hidden, rng: &r2)
            #expect(a.storage == b.storage, "\(name): the completion read hidden pixels")
            for i in 0..<a.count where !hidden[i % 1024] { #expect(a.storage[i] == x.storage[i], "\(name)") }
            var e1 = Philox(seed: 0)
            var e2 = Philox(seed: 0)
            #expect(
                family.embed(x, hidden: hidden, rng: &e1)[0].storage
                    == family.embed(other, hidden: hidden, rng: &e2)[0].storage, "\(name)")
        }
    }

    /// Iterative decoding is a function of its seed: the same seed decodes the same tokens, another
    /// seed (at temperature 1) others; every hole token is decoded, no visible token touched.
    @Test func iterativeDecodingIsDeterministicForASeed() {
        let family = Self.tiny(settings: Self.settings(steps: 5))
        let hidden = MaskTransform(kind: .centerCrop, ratio: 0.25).hidden(size: 32, rng: &Self.unused)
        let input = family.inputTokens(Self.images(3, seed: 4), hidden: hidden)
        let hole = family.hiddenTokens(hidden)
        #expect(hole.count == 16)
        func decode(_ seed: UInt64) -> [[Int]] {
            var rng = Philox(seed: seed)
            return family.decodeHole(input, hole: hole, rng: &rng)
        }
        #expect(decode(7) == decode(7))
        #expect(decode(7) != decode(8))
        for (out, original) in zip(decode(7), input) {
            for p in 0..<64 where !hole.contains(p) { #expect(out[p] == original[p]) }
        }
        // Temperature 0 is greedy: no draw matters.
        let greedy = Self.tiny(settings: Self.settings(steps: 5, temperature: 0))
        var a = Philox(seed: 1)
        var b = Philox(seed: 2)
        #expect(greedy.decodeHole(input, hole: hole, rng: &a) == greedy.decodeHole(input, hole: hole, rng: &b))
    }

    nonisolated(unsafe) static var unused = Philox(seed: 0)

    /// Cross-entropy of rows of logits against labels, in Double, written out.
    static func crossEntropy(_ logits: Tensor<Float>, _ labels: [Int]) -> Double {
        let k = logits.shape[logits.rank - 1]
        let rows = logits.count / k
        var total = 0.0
        for r in 0..<rows {
            let row = (0..<k).map { Double(logits.storage[r * k + $0]) }
            let top = row.max()!
            let lse = top + log(row.map { exp($0 - top) }.reduce(0, +))
            total += lse - row[labels[r]]
        }
        return total / Double(rows)
    }

    static func argmaxRows(_ logits: Tensor<Float>) -> [Int] {
        let k = logits.shape[logits.rank - 1]
        return (0..<(logits.count / k)).map { r in
            (0..<k).max { logits.storage[r * k + $0] < logits.storage[r * k + $1] }!
        }
    }

    /// Every method's terms on a tiny MAGE, against the same quantities computed from the model's
    /// parts: E's embeddings, D's logits of the hole's tokens, the tokenizer's codes.
    @Test func everyMethodsLossByHand() {
        let student = Self.tiny(seed: 6)
        let teacher = Self.tiny(seed: 6)
        let xr = Self.images(3, seed: 11)
        let xf = Self.images(2, seed: 12)
        let noise = Self.images(2, seed: 13) * 3 - 1
        let hidden = MaskTransform(kind: .centerCrop, ratio: 0.25).hidden(size: 32, rng: &Self.unused)
        let hole = student.hiddenTokens(hidden)
        let alpha: Float = 0.25
        let objective = Objective(alpha: alpha, distance: .mse, normalize: false)
        func terms(_ m: UnlearningMethod) -> UnlearningMethod.Terms {
            m.terms(
                student: student, teacher: teacher, retain: xr, forget: xf, noise: noise, hidden: hidden,
                draws: Philox(seed: 3), objective: objective)
        }
        let model = teacher.model
        func embedding(_ x: Tensor<Float>) -> Tensor<Float> {
            let visible = Array(repeating: (0..<64).filter { !hole.contains($0) }, count: x.shape[0])
            return model.encode(tokens: model.tokenize(MaskTransform.apply(x, hidden: [hidden])), visible: visible)
        }
        func holeLogits(_ x: Tensor<Float>) -> Tensor<Float> {
            let visible = Array(repeating: (0..<64).filter { !hole.contains($0) }, count: x.shape[0])
            let tokens = model.tokenize(MaskTransform.apply(x, hidden: [hidden]))
            let logits = model.decode(model.encode(tokens: tokens, visible: visible), visible: visible)
            let picked = TokenOrder.gather(logits, Array(repeating: hole, count: x.shape[0]))
            return picked.reshaped([x.shape[0] * hole.count, 16])
        }
        func holeCodes(_ x: Tensor<Float>) -> [Int] { model.tokenize(x).flatMap { t in hole.map { t[$0] } } }
        func near(_ a: Tensor<Float>, _ b: Double) -> Bool { abs(Double(a.scalar) - b) <= 1e-4 * max(1, abs(b)) }

        // Ours: the retain term is 0 at the start; the forget term pulls E(T(x_f)) to E0(T(n)).
        let ours = terms(.ours)
        let target = embedding(noise)
        let forgetDistance =
            zip(embedding(xf).storage, target.storage).reduce(0.0) {
                $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1)
            } / Double(target.count)
        #expect(ours.retain.scalar == 0)
        #expect(near(ours.forget, forgetDistance), "\(ours.forget.scalar) vs \(forgetDistance)")
        #expect(near(ours.total, Double(alpha) * forgetDistance))

        // MAX LOSS: the token cross-entropy on D_R, minus alpha times it on D_F.
        let maxLoss = terms(.maxLoss)
        let ceR = Self.crossEntropy(holeLogits(xr), holeCodes(xr))
        let ceF = Self.crossEntropy(holeLogits(xf), holeCodes(xf))
        #expect(near(maxLoss.retain, ceR) && near(maxLoss.forget, ceF))
        #expect(near(maxLoss.total, ceR - Double(alpha) * ceF))

        // NOISY LABEL: the forget holes' labels are the noise image's codes.
        let noisy = terms(.noisyLabel)
        #expect(near(noisy.retain, ceR))
        #expect(near(noisy.forget, Self.crossEntropy(holeLogits(xf), holeCodes(noise))))

        // RETAIN LABEL: the retain term distils to the teacher's most likely tokens; the forget holes
        // are trained towards the teacher's tokens of the retain images paired with them.
        let retainLabel = terms(.retainLabel)
        let teacherTokens = Self.argmaxRows(holeLogits(xr))
        #expect(near(retainLabel.retain, Self.crossEntropy(holeLogits(xr), teacherTokens)))
        #expect(
            near(
                retainLabel.forget,
                Self.crossEntropy(holeLogits(xf), Array(teacherTokens.prefix(2 * hole.count)))))

        // RANDOM ENCODER: the retain term as ours; the forget target is random, so only its sign is known.
        let random = terms(.randomEncoder)
        #expect(random.retain.scalar == 0 && random.forget.scalar > 0)
    }

    /// A mask that can touch every token leaves MAGE nothing to read: such masks are found (and a run
    /// with one is refused at its start, naming the field).
    @Test func masksThatCanHideEveryTokenAreFound() {
        func fixed(_ kind: MaskTransform.Kind, _ ratio: Double) -> Bool {
            MaskTransform(kind: kind, ratio: ratio).canTouchEveryCell(size: 32, cell: 4)
        }
        #expect(!fixed(.centerCrop, 0.25) && !fixed(.centerCrop, 0.5) && !fixed(.outpaint, 0.75))
        #expect(fixed(.centerCrop, 0.9))  // side 30 from row 1: every token row
        #expect(fixed(.outpaint, 0.99))  // a 3x3 visible centre lies inside one token, which it only partly fills
        #expect(!fixed(.randomBox, 0.25))  // side 16: cannot reach from the first token row to the last
        #expect(fixed(.randomBox, 0.8))  // side 29
        #expect(!RandomMask(kind: .patches(size: 4), ratio: 0.25...0.75).canTouchEveryCell(size: 32, cell: 4))
        #expect(!RandomMask(kind: .patches(size: 8), ratio: 0.25...0.75).canTouchEveryCell(size: 32, cell: 4))
        #expect(RandomMask(kind: .patches(size: 2), ratio: 0.25...0.75).canTouchEveryCell(size: 32, cell: 4))
        #expect(!RandomMask(kind: .box, ratio: 0.25...0.5).canTouchEveryCell(size: 32, cell: 4))  // side 23
        #expect(RandomMask(kind: .box, ratio: 0.25...0.75).canTouchEveryCell(size: 32, cell: 4))  // side 28
        // Exhaustively for the boxes: the verdict is what drawing every place gives.
        for side in 1..<32 {
            let all = (0...(32 - side)).contains { o in
                var h = [Bool](repeating: false, count: 1024)
                for y in o..<(o + side) { for x in o..<(o + side) { h[y * 32 + x] = true } }
                return MaskTransform.touchedPatches(h, size: 32, patch: 4).count == 64
            }
            let ratio = Double(side * side) / 1024
            #expect(
                MaskTransform(kind: .randomBox, ratio: ratio).canTouchEveryCell(size: 32, cell: 4) == all,
                "side \(side)")
        }
    }

    /// The whole-model baselines train the transformer, never the tokenizer.
    @Test func theTokenizerIsFixedForEveryMethod() {
        let family = Self.tiny()
        family.module.setTrainable(true)
        family.fixedModules.forEach { $0.setTrainable(false) }
        #expect(family.model.tokenizer.parameters.allSatisfy { !$0.requiresGrad })
        #expect(family.model.transformerParameters.allSatisfy { $0.tensor.requiresGrad })
    }

    /// The tokenizer stage restarts codes no batch of a window used, and reports usage.
    @Test func deadCodesAreRestartedOnData() {
        let family = Self.tiny(stage: .tokenizer)
        var rng = Philox(seed: 4)
        let x = Self.images(4, seed: 21)
        _ = family.tokenizerLoss(x, rng: &rng)
        // Push code 3 far away: nothing uses it for a window, then it comes back onto an encoder output.
        let book = family.model.tokenizer.quantize.embedding.weight
        var table = book.storage
        for i in 0..<4 { table[3 * 4 + i] = 1e6 }
        book.assign(table)
        family.usage.reset()
        for _ in 0..<CodeUsage.window { _ = family.tokenizerLoss(x, rng: &rng) }
        #expect(book.storage[12] == 1e6)
        _ = family.tokenizerLoss(x, rng: &rng)
        #expect(book.storage[12] != 1e6 && abs(book.storage[12]) < 1e3)
        #expect(VectorQuantizer<Float>.perplexity([5, 5, 0, 0]) == 2)
        #expect(abs(VectorQuantizer<Float>.perplexity([1, 1, 1, 1]) - 4) < 1e-12)
    }
}
