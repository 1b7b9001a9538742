import Foundation
import LetheData
import LetheModels
import LetheSpec
import LetheTensor

/// MAGE as the executor drives it. Pretraining has two stages (`train.stage`): the tokenizer learns
/// to reconstruct whole images (reconstruction + codebook + commitment loss, codebook started on data,
/// dead codes restarted); the transformer then learns, over the frozen tokenizer's tokens, to predict
/// the codebook index of every masked token (cross-entropy). Unlearning and evaluation use both.
///
/// A token is hidden by an I2I mask when its image block holds any hidden pixel, and every hidden
/// pixel is filled (0) before the tokenizer sees the image, so no hole pixel reaches a visible token
/// through the tokenizer's receptive field.
struct MAGEFamily: ModelFamily {
    let model: MAGE<Float>
    let settings: ModelSpec.MAGE
    /// The pretraining stage this family trains; nil when unlearning or evaluating.
    let stage: TrainSpec.Stage?
    /// Code usage of the tokenizer stage since the last dead-code check.
    let usage = CodeUsage()

    var module: Module<Float> { model }
    var encoderParameters: [Tensor<Float>] { model.encoderParameters.map(\.tensor) }

    /// What a pretraining stage trains: the tokenizer, or the transformer with the tokenizer frozen.
    var stageParameters: [Tensor<Float>] {
        stage == .tokenizer
            ? model.tokenizer.parameters : model.transformerParameters.map(\.tensor)
    }

    /// What a pretraining stage's checkpoint holds: the tokenizer stage saves the tokenizer alone
    /// (`tokenizer.*`), the transformer stage the whole model.
    var checkpointPrefix: (module: Module<Float>, prefix: String) {
        stage == .tokenizer ? (model.tokenizer, "tokenizer.") : (model, "")
    }

    /// The transformer stage starts from the tokenizer stage's checkpoint, the tokenizer frozen.
    var pretrainingOrigin: (module: Module<Float>, prefix: String)? {
        stage == .transformer ? (model.tokenizer, "tokenizer.") : nil
    }

    /// The tokenizer is never unlearned: the baselines that train the whole model train the transformer.
    var fixedModules: [Module<Float>] { [model.tokenizer] }
    var trainingState: [String: [Int]] {
        [
            "codebook_initialized": [model.tokenizer.quantize.initializedFromData ? 1 : 0], "code_counts": usage.counts,
            "code_steps": [usage.steps],
        ]
    }
    func restoreTrainingState(_ state: [String: [Int]]) throws {
        model.tokenizer.quantize.initializedFromData = state["codebook_initialized"] == [1]
        usage.restore(counts: state["code_counts"] ?? [], steps: state["code_steps"]?.first ?? 0)
    }

    // MARK: tokens and masks

    /// The token positions an I2I mask hides: every cell whose image block holds a hidden pixel.
    func hiddenTokens(_ hidden: [Bool]) -> [Int] {
        let size = model.config.imageSize
        return MaskTransform.touchedPatches(hidden, size: size, patch: size / model.config.grid)
    }

    /// Every position not in `hidden` (sorted), once per image.
    func complement(_ hidden: [Int], batch: Int) -> [[Int]] {
        let h = Set(hidden)
        return Array(repeating: (0..<model.config.tokens).filter { !h.contains($0) }, count: batch)
    }

    /// The tokens E sees for T(x): the tokenizer's codes of the image with its hidden pixels filled.
    func inputTokens(_ x: Tensor<Float>, hidden: [Bool]) -> [[Int]] {
        model.tokenize(MaskTransform.apply(x, hidden: [hidden]))
    }

    /// Logits of the `hidden` positions of each image, as rows (B * H, codebook_size).
    func hiddenLogits(tokens: [[Int]], visible: [[Int]], hidden: [[Int]]) -> Tensor<Float> {
        let logits = model.decode(model.encode(tokens: tokens, visible: visible), visible: visible)
        let picked = TokenOrder.gather(logits, hidden)
        return picked.reshaped([picked.shape[0] * picked.shape[1], model.config.codebookSize])
    }

    // MARK: ModelFamily

    /// E(T(x)): the encoder's output over the visible tokens of the masked image.
    func embed(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> [Tensor<Float>] {
        let visible = complement(hiddenTokens(hidden), batch: x.shape[0])
        return [model.encode(tokens: inputTokens(x, hidden: hidden), visible: visible)]
    }

    func trainingLoss(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
        if stage == .tokenizer { return tokenizerLoss(x, rng: &rng) }
        let n = x.shape[0]
        let l = model.config.tokens
        let truth = model.tokenize(x)
        if rng.uniform() < 0.5 {
            // MAGE's variable masking: one ratio per batch from the truncated Gaussian, positions per image.
            let ratio = Self.maskRatio(settings.maskRatio, rng: &rng)
            let masked = min(l - 1, max(1, Int((ratio * Double(l)).rounded(.up))))
            let orders = (0..<n).map { _ in rng.permutation(l) }
            let hiddenPositions = orders.map { Array($0.prefix(masked)).sorted() }
            let visible = orders.map { Array($0.dropFirst(masked)).sorted() }
            let labels = zip(truth, hiddenPositions).flatMap { t, h in h.map { t[$0] } }
            return hiddenLogits(tokens: truth, visible: visible, hidden: hiddenPositions).crossEntropy(labels)
        }
        return taskPrediction(x, hidden: hidden, rng: &rng).loss()
    }

    /// MAGE's masking ratio: a Gaussian (mean, std) truncated to [min, max), by rejection.
    static func maskRatio(_ m: ModelSpec.MAGE.MaskRatio, rng: inout Philox) -> Double {
        for _ in 0..<10_000 {
            let r = m.mean + m.std * rng.normal()
            if r >= m.min && r < m.max { return r }
        }
        return (m.min + m.max) / 2  // a window far in the tail: its middle
    }

    /// The tokenizer stage: whole images reconstructed, plus the codebook and commitment losses.
    func tokenizerLoss(_ x: Tensor<Float>, rng: inout Philox) -> Tensor<Float> {
        let tokenizer = model.tokenizer
        let z = tokenizer.encoder(x)
        GradMode.withoutGrad {
            if !tokenizer.quantize.initializedFromData { tokenizer.quantize.initializeFromData(z, rng: &rng) }
            if usage.steps == CodeUsage.window {
                tokenizer.quantize.restart(usage.dead, from: z, rng: &rng)
                usage.reset()
            }
        }
        let (q, indices, vq) = tokenizer.quantize(z)
        usage.add(indices, codes: model.config.codebookSize)
        return tokenizer.decoder(q).mseLoss(x) + vq
    }

    /// The logits of the hole's tokens against the tokenizer's codes of the whole image
    /// (cross-entropy, MAGE's loss); a label image maps to its hole's codes.
    func taskPrediction(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> TaskPrediction {
        let n = x.shape[0]
        let holes = hiddenTokens(hidden)
        let hiddenPositions = Array(repeating: holes, count: n)
        let logits = hiddenLogits(
            tokens: inputTokens(x, hidden: hidden), visible: complement(holes, batch: n), hidden: hiddenPositions)
        let model = model
        func holeCodes(_ images: Tensor<Float>) -> TaskPrediction.Label {
            .classes(model.tokenize(images).flatMap { t in holes.map { t[$0] } })
        }
        return TaskPrediction(prediction: logits, label: holeCodes(x), labelLike: holeCodes)
    }

    /// The most likely code of every hole token in one pass (the code-change diagnostic).
    func holeCodes(_ x: Tensor<Float>, hidden: [Bool]) -> [[Int]]? {
        var unused = Philox(seed: 0)
        guard case .classes(let codes) = taskPrediction(x, hidden: hidden, rng: &unused).asLabel else { return nil }
        let h = hiddenTokens(hidden).count
        return (0..<x.shape[0]).map { Array(codes[($0 * h)..<(($0 + 1) * h)]) }
    }

    /// Completion: the hole's tokens decoded (`decoding`), rendered by the tokenizer's decoder, the
    /// visible pixels pasted back. The tokenizer stage reconstructs the whole image instead.
    func complete(_ x: Tensor<Float>, hidden: [Bool], rng: inout Philox) -> Tensor<Float> {
        if stage == .tokenizer { return Families.composite(x, reconstruct(x), hidden: hidden) }
        let tokens = decodeHole(inputTokens(x, hidden: hidden), hole: hiddenTokens(hidden), rng: &rng)
        return Families.composite(x, model.render(tokens).clamped(0, 1), hidden: hidden)
    }

    /// The tokenizer's reconstruction of whole images.
    func reconstruct(_ x: Tensor<Float>) -> Tensor<Float> {
        model.render(model.tokenize(x)).clamped(0, 1)
    }

    /// Fills the `hole` positions of every image's tokens. one_pass: each the most likely code.
    /// iterative (MaskGIT): `decoding_steps` passes; after pass s of S, cos(pi/2 (s+1)/S) of the hole
    /// is still masked; each pass samples a code for every masked token (softmax at `temperature`),
    /// scores it by its log-probability plus Gumbel noise scaled by temperature (1 - (s+1)/S), and
    /// keeps the best-scoring ones; the rest are masked again. Seeded by `rng`.
    func decodeHole(_ input: [[Int]], hole: [Int], rng: inout Philox) -> [[Int]] {
        let n = input.count
        let k = model.config.codebookSize
        var tokens = input
        var masked = Array(repeating: hole, count: n)
        let steps = settings.decoding == .onePass ? 1 : settings.decodingSteps
        let temperature = settings.decoding == .onePass ? 0 : settings.temperature
        var s = 0
        while !(masked.first?.isEmpty ?? true) {
            let visible = masked.map { m in
                let hidden = Set(m)
                return (0..<model.config.tokens).filter { !hidden.contains($0) }
            }
            let logits = GradMode.withoutGrad {
                hiddenLogits(tokens: tokens, visible: visible, hidden: masked).logSoftmax().storage
            }
            let fraction = Double(s + 1) / Double(steps)
            let left = s + 1 >= steps ? 0 : Int((Double(hole.count) * cos(.pi / 2 * fraction)).rounded(.down))
            let remaining = min(left, masked[0].count - 1)  // at least one token per pass
            let h = masked[0].count
            for b in 0..<n {
                var scored: [(position: Int, code: Int, score: Double)] = []
                for (j, position) in masked[b].enumerated() {
                    let row = (b * h + j) * k
                    let code = Self.sample(logits[row..<(row + k)], temperature: temperature, rng: &rng)
                    let gumbel = temperature > 0 ? -log(-log(max(rng.uniform(), 1e-300))) : 0
                    let score = Double(logits[row + code]) + temperature * (1 - fraction) * gumbel
                    scored.append((position, code, score))
                }
                // Best first; ties by position, so the order never depends on the sort.
                scored.sort { $0.score != $1.score ? $0.score > $1.score : $0.position < $1.position }
                for t in scored.prefix(h - remaining) { tokens[b][t.position] = t.code }
                masked[b] = scored.dropFirst(h - remaining).map(\.position).sorted()
            }
            s += 1
        }
        return tokens
    }

    /// A code drawn from log-probabilities at `temperature` (0: the most likely; ties: the lowest).
    static func sample(_ logp: ArraySlice<Float>, temperature: Double, rng: inout Philox) -> Int {
        let base = logp.startIndex
        guard temperature > 0 else {
            return logp.indices.max { logp[$0] < logp[$1] || (logp[$0] == logp[$1] && $0 > $1) }! - base
        }
        let scaled = logp.map { Double($0) / temperature }
        let top = scaled.max()!
        let weights = scaled.map { exp($0 - top) }
        var u = rng.uniform() * weights.reduce(0, +)
        for (i, w) in weights.enumerated() {
            u -= w
            if u < 0 { return i }
        }
        return weights.count - 1
    }
}

/// How often each code was used since the last dead-code check of the tokenizer stage.
final class CodeUsage {
    /// Steps between dead-code checks: a code unused for this many batches is restarted.
    static let window = 50
    private(set) var counts: [Int] = []
    private(set) var steps = 0

    func add(_ indices: [Int], codes: Int) {
        if counts.isEmpty { counts = Array(repeating: 0, count: codes) }
        for i in indices { counts[i] += 1 }
        steps += 1
    }

    /// The codes no batch of the window used.
    var dead: [Int] { counts.indices.filter { counts[$0] == 0 } }

    func restore(counts: [Int], steps: Int) {
        (self.counts, self.steps) = (counts, steps)
    }

    func reset() {
        counts = counts.map { _ in 0 }
        steps = 0
    }
}
