import Foundation
import Testing
import LetheTensor
@testable import LetheModels

@Suite struct MAGEModelTests {
    /// 16x16 images, a 4x4 token grid, 16 codes of 4: small enough for Double and for exhaustive checks.
    static func small() -> MAGEConfig {
        var c = MAGEConfig()
        c.imageSize = 16
        c.tokenizer.imageSize = 16
        c.tokenizer.levels = [8, 16]
        c.tokenizer.codebookSize = 16
        c.tokenizer.codebookDim = 4
        c.tokenizer.groups = 4
        c.width = 16
        c.depth = 2
        c.heads = 2
        c.decoderWidth = 8
        c.decoderDepth = 1
        c.decoderHeads = 2
        return c
    }

    @Test func shapesAndParameterPathsFollowMAGE() {
        var rng = Philox(seed: 0)
        let model = MAGE<Float>(Self.small(), rng: &rng)
        let paths = model.namedParameters().map(\.path)
        for path in [
            "tokenizer.encoder.conv_in.weight", "tokenizer.quantize.embedding.weight",
            "tokenizer.decoder.conv_out.bias",
            "token_emb.word_embeddings.weight", "token_emb.position_embeddings.weight", "token_emb.LayerNorm.weight",
            "blocks.1.attn.qkv.weight", "norm.bias", "decoder_embed.weight", "mask_token",
            "decoder_pos_embed_learned", "decoder_blocks.0.mlp.fc2.bias", "decoder_norm.weight", "decoder_pred.bias",
        ] {
            #expect(paths.contains(path), "\(path)")
        }
        // The word embeddings hold every code and [MASK]; E is the token embedding, blocks and norm.
        #expect(model.tokenEmb.wordEmbeddings.weight.shape == [17, 16])
        #expect(
            model.encoderParameters.map(\.path).allSatisfy {
                $0.hasPrefix("token_emb.") || $0.hasPrefix("blocks.") || $0.hasPrefix("norm.")
            })
        #expect(!model.transformerParameters.contains { $0.path.hasPrefix("tokenizer.") })
        #expect(
            model.transformerParameters.count + model.tokenizer.parameters.count == model.parameters.count)

        let x = Tensor<Float>.uniform([2, 1, 16, 16], 0, 1, rng: &rng)
        let tokens = model.tokenize(x)
        #expect(tokens.count == 2 && tokens.allSatisfy { $0.count == 16 && $0.allSatisfy { (0..<16).contains($0) } })
        let visible = [[0, 1, 2, 4, 7, 9], [3, 5, 6, 8, 10, 11]]
        let latent = model.encode(tokens: tokens, visible: visible)
        #expect(latent.shape == [2, 6, 16])
        #expect(model.decode(latent, visible: visible).shape == [2, 16, 16])
        #expect(model.render(tokens).shape == [2, 1, 16, 16])
    }

    /// Rendering an image's own tokens is what the tokenizer reconstructs: the quantised latent of the
    /// image, decoded.
    @Test func tokenizerRoundTrip() {
        var rng = Philox(seed: 1)
        let model = MAGE<Double>(Self.small(), rng: &rng)
        let x = Tensor<Double>.uniform([3, 1, 16, 16], 0, 1, rng: &rng)
        let direct = model.tokenizer.decoder(model.tokenizer.quantize(model.tokenizer.encoder(x)).quantized)
        let rendered = model.render(model.tokenize(x))
        for (a, b) in zip(direct.storage, rendered.storage) { #expect(abs(a - b) < 1e-12) }
        // Tokens of a rendered image's codes are the codes themselves when each code is its own
        // nearest neighbour: the codebook round trip.
        let codes = model.tokenizer.quantize.embedding.weight
        let (_, nearest) = codes.nearestCodebook(codes)
        #expect(nearest == Array(0..<16))
    }

    /// The encoder sees the visible tokens only: changing a hidden token's code changes nothing.
    @Test func theEncoderReadsOnlyVisibleTokens() {
        var rng = Philox(seed: 2)
        let model = MAGE<Double>(Self.small(), rng: &rng)
        let visible = [[0, 5, 10, 15]]
        var tokens = [(0..<16).map { $0 % 16 }]
        let a = model.decode(model.encode(tokens: tokens, visible: visible), visible: visible)
        tokens[0][3] = 7
        tokens[0][12] = 1
        let b = model.decode(model.encode(tokens: tokens, visible: visible), visible: visible)
        #expect(a.storage == b.storage)
        tokens[0][5] = 2
        let c = model.decode(model.encode(tokens: tokens, visible: visible), visible: visible)
        #expect(a.storage != c.storage)
    }
}
