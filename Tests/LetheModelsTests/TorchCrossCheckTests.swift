import Foundation
import Testing
import LetheTensor
@testable import LetheModels

/// The same tiny models as `bench/torch/export_fixtures.py`, with the same parameter paths.
final class TorchMLP: Module<Float> {
    let fc1: Linear<Float>, norm: LayerNorm<Float>, fc2: Linear<Float>
    init(rng: inout Philox) {
        fc1 = Linear(6, 16, rng: &rng)
        norm = LayerNorm(16)
        fc2 = Linear(16, 3, rng: &rng)
        super.init()
        register("fc1", fc1)
        register("norm", norm)
        register("fc2", fc2)
    }
    func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> { fc2(norm(fc1(x).gelu())) }
}

final class TorchConvNet: Module<Float> {
    let conv1: Conv2d<Float>, norm: GroupNorm<Float>, conv2: Conv2d<Float>
    init(rng: inout Philox) {
        conv1 = Conv2d(2, 8, kernel: 3, stride: 2, padding: 1, rng: &rng)
        norm = GroupNorm(groups: 4, channels: 8)
        conv2 = Conv2d(8, 2, kernel: 3, padding: 1, rng: &rng)
        super.init()
        register("conv1", conv1)
        register("norm", norm)
        register("conv2", conv2)
    }
    func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> { conv2(norm(conv1(x)).silu().upsampleNearest2x()) }
}

final class TorchAttnNet: Module<Float> {
    let embed: Embedding<Float>, norm: LayerNorm<Float>, qkv: Linear<Float>, proj: Linear<Float>, head: Linear<Float>
    init(rng: inout Philox) {
        embed = Embedding(10, 16, rng: &rng)
        norm = LayerNorm(16)
        qkv = Linear(16, 48, rng: &rng)
        proj = Linear(16, 16, rng: &rng)
        head = Linear(16, 10, rng: &rng)
        super.init()
        register("embed", embed)
        register("norm", norm)
        register("qkv", qkv)
        register("proj", proj)
        register("head", head)
    }
    func callAsFunction(_ tokens: [Int], batch b: Int, length t: Int) -> Tensor<Float> {
        let h = embed(tokens, shape: [b, t])
        let qkvOut = qkv(norm(h))
        let heads = (0..<3).map { i in
            qkvOut.slice(axis: -1, (16 * i)..<(16 * i + 16)).reshaped([b, t, 2, 8]).transposed(1, 2)
        }
        let a = Tensor.attention(heads[0], heads[1], heads[2]).transposed(1, 2).reshaped([b, t, 16])
        return head(h + proj(a))
    }
}

@Suite struct TorchCrossCheckTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Fixtures/torch")

    static func fixture(_ name: String) throws -> Safetensors.File {
        try Safetensors.read(Array(try Data(contentsOf: dir.appendingPathComponent("\(name).safetensors"))))
    }

    /// The entries under `prefix.` with the prefix removed, as a state dict.
    static func section(_ file: Safetensors.File, _ prefix: String) -> Safetensors.File {
        Safetensors.File(
            tensors: file.tensors.filter { $0.name.hasPrefix(prefix + ".") }.map {
                (String($0.name.dropFirst(prefix.count + 1)), $0.entry)
            })
    }

    static func values(_ file: Safetensors.File, _ name: String) throws -> Tensor<Float> {
        let e = file[name]!
        return Tensor(try e.values(as: Float.self), shape: e.shape)
    }

    /// ||a - b|| / ||b||: robust to the order in which two BLAS libraries sum.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var num = 0.0
        var den = 0.0
        for (x, y) in zip(a, b) {
            num += Double(x - y) * Double(x - y)
            den += Double(y) * Double(y)
        }
        return (num / max(den, 1e-30)).squareRoot()
    }

    static let tolerance = 1e-5

    /// Forward, loss, every gradient and three optimiser steps against PyTorch.
    func crossCheck(
        _ name: String, _ model: Module<Float>, loss: () -> Tensor<Float>, output: () -> Tensor<Float>,
        optimizer: inout some Optimizer<Float>, clip: Double? = nil
    ) throws {
        let file = try Self.fixture(name)
        var worst = 0.0
        var compared = 0
        func compare(_ what: String, _ mine: [Float], _ reference: String) throws {
            let err = Self.relativeError(mine, try Self.values(file, reference).storage)
            worst = max(worst, err)
            compared += 1
            #expect(err < Self.tolerance, "\(name) \(what): relative error \(err)")
        }
        try model.load(Self.section(file, "param"))
        let out = output()
        #expect(out.shape == file["output"]!.shape, "\(name) output shape")
        try compare("output", out.storage, "output")
        let l = loss()
        try compare("loss", [l.scalar], "loss")
        l.backward()
        for (path, p) in model.namedParameters() { try compare("grad.\(path)", p.grad ?? [], "grad.\(path)") }
        try model.load(Self.section(file, "param"))
        for _ in 0..<3 {
            optimizer.zeroGrad()
            loss().backward()
            if let clip { clipGradNorm(model.parameters, maxNorm: clip) }
            optimizer.step()
        }
        for (path, p) in model.namedParameters() { try compare("after 3 steps, \(path)", p.storage, "after3.\(path)") }
        print("PyTorch cross-check \(name): \(compared) tensors, worst relative error \(String(format: "%.2e", worst))")
    }

    @Test func mlpWithGELULayerNormAndAdamW() throws {
        var rng = Philox(seed: 0)
        let model = TorchMLP(rng: &rng)
        let file = try Self.fixture("mlp")
        let x = try Self.values(file, "input.x")
        let target = try Self.values(file, "target")
        var opt = Adam.adamW(model.parameters, lr: 1e-2, betas: (0.9, 0.95), weightDecay: 0.05)
        try crossCheck("mlp", model, loss: { model(x).mseLoss(target) }, output: { model(x) }, optimizer: &opt)
    }

    @Test func convNetWithGroupNormSiLUUpsampleAndAdam() throws {
        var rng = Philox(seed: 0)
        let model = TorchConvNet(rng: &rng)
        let file = try Self.fixture("conv")
        let x = try Self.values(file, "input.x")
        let target = try Self.values(file, "target")
        var opt = Adam(model.parameters, lr: 1e-2, weightDecay: 0.01)
        try crossCheck("conv", model, loss: { model(x).l1Loss(target) }, output: { model(x) }, optimizer: &opt)
    }

    @Test func attentionNetWithEmbeddingCrossEntropyClippingAndNesterovSGD() throws {
        var rng = Philox(seed: 0)
        let model = TorchAttnNet(rng: &rng)
        let file = try Self.fixture("attention")
        let tokens = try file["input.tokens"]!.integers()
        let targets = try file["target"]!.integers()
        var opt = SGD(model.parameters, lr: 0.1, momentum: 0.9, weightDecay: 1e-3, nesterov: true)
        try crossCheck(
            "attention", model, loss: { model(tokens, batch: 2, length: 5).reshaped([10, 10]).crossEntropy(targets) },
            output: { model(tokens, batch: 2, length: 5) }, optimizer: &opt, clip: 1.0)
    }
}
