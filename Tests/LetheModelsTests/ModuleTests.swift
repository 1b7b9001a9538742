import Foundation
import Testing
import LetheTensor
@testable import LetheModels

/// A tiny two-layer network with a nested list, to pin paths and loading.
final class TinyNet: Module<Float> {
    let embed: Linear<Float>
    let blocks: ModuleList<Float, LayerNorm<Float>>
    let head: Linear<Float>

    init(width: Int = 4, rng: inout Philox) {
        embed = Linear(3, width, rng: &rng)
        blocks = ModuleList([LayerNorm(width), LayerNorm(width)])
        head = Linear(width, 2, bias: false, rng: &rng)
        super.init()
        register("embed", embed)
        register("blocks", blocks)
        register("head", head)
    }

    func callAsFunction(_ x: Tensor<Float>) -> Tensor<Float> {
        var h = embed(x).gelu()
        for b in blocks.items { h = b(h) }
        return head(h)
    }
}

@Suite struct ModuleTests {
    @Test func parameterPathsFollowPyTorchNaming() {
        var rng = Philox(seed: 0)
        let net = TinyNet(rng: &rng)
        #expect(
            net.namedParameters().map(\.path) == [
                "embed.weight", "embed.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                "head.weight",
            ])
        #expect(net.embed.weight.shape == [4, 3])
        #expect(net.parameterCount == 12 + 4 + 16 + 8)
    }

    @Test func stateDictRoundTripsThroughSafetensorsBytes() throws {
        var rng = Philox(seed: 1)
        let a = TinyNet(rng: &rng)
        let b = TinyNet(rng: &rng)
        #expect(a.embed.weight.storage != b.embed.weight.storage)
        let bytes = Safetensors.write(a.stateDict(metadata: ["format": "pt"]))
        try b.load(try Safetensors.read(bytes))
        for (x, y) in zip(a.parameters, b.parameters) { #expect(x.storage == y.storage) }
    }

    @Test func strictLoadingNamesEveryOffendingPathAndChangesNothing() throws {
        var rng = Philox(seed: 2)
        let net = TinyNet(rng: &rng)
        let wide = TinyNet(width: 5, rng: &rng)
        var file = wide.stateDict()
        file.tensors.removeAll { $0.name == "blocks.1.bias" }
        file.tensors.append(("blocks.2.weight", Safetensors.Entry(dtype: .F32, shape: [1], data: [0, 0, 0, 0])))
        let before = net.parameters.map(\.storage)
        #expect {
            try net.load(file)
        } throws: { error in
            let e = error as! StateDictError
            return e.missing == ["blocks.1.bias"] && e.unexpected == ["blocks.2.weight"]
                && e.misshaped.map(\.path).contains("embed.weight")
                && e.description.contains("embed.weight: shape [5, 3] in the checkpoint, [4, 3] in the model")
        }
        #expect(net.parameters.map(\.storage) == before)
    }

    /// Weights of a model that diverged (NaN, infinity) are refused by name, and nothing is loaded.
    @Test func nonFiniteWeightsAreRefused() throws {
        var rng = Philox(seed: 3)
        let a = TinyNet(rng: &rng)
        let b = TinyNet(rng: &rng)
        a.embed.weight.assign(a.embed.weight.storage.enumerated().map { $0.offset == 2 ? .nan : $0.element })
        a.head.weight.assign(a.head.weight.storage.map { _ in .infinity })
        let before = b.parameters.map(\.storage)
        #expect { try b.load(a.stateDict()) } throws: { error in
            let e = error as! StateDictError
            return e.unreadable.map(\.path) == ["embed.weight", "head.weight"]
                && e.description.contains("embed.weight: holds 1 non-finite value (NaN or infinity)")
                && e.description.contains("head.weight: holds 8 non-finite values")
        }
        #expect(b.parameters.map(\.storage) == before)
    }

    @Test func frozenModulesDoNotMove() {
        var rng = Philox(seed: 3)
        let net = TinyNet(rng: &rng)
        net.embed.setTrainable(false)
        let x = Tensor<Float>.randn([2, 3], rng: &rng)
        net(x).square().sum().backward()
        #expect(net.embed.weight.grad == nil)
        #expect(net.head.weight.grad != nil)
        var adam = Adam(net.parameters, lr: 0.1)
        let frozen = net.embed.weight.storage
        adam.step()
        #expect(net.embed.weight.storage == frozen)
    }

    @Test func aShortTrainingRunReducesTheLoss() {
        var rng = Philox(seed: 4)
        let net = TinyNet(rng: &rng)
        let x = Tensor<Float>.randn([16, 3], rng: &rng)
        let y = Tensor<Float>.randn([16, 2], rng: &rng)
        var adam = Adam(net.parameters, lr: 0.01)
        var losses: [Float] = []
        for _ in 0..<60 {
            adam.zeroGrad()
            let loss = net(x).mseLoss(y)
            losses.append(loss.scalar)
            loss.backward()
            adam.step()
        }
        #expect(losses.last! < losses.first! * 0.7)
    }
}
