import Foundation
import Testing
import LetheTensor
@testable import LetheData

func temporaryPath(_ name: String) -> String { NSTemporaryDirectory() + "lethe-data-\(UUID().uuidString)-\(name)" }

func hexBytes(_ hex: String) -> [UInt8] {
    stride(from: 0, to: hex.count, by: 2).map { i in
        UInt8(hex[hex.index(hex.startIndex, offsetBy: i)..<hex.index(hex.startIndex, offsetBy: i + 2)], radix: 16)!
    }
}

@Suite struct IDXTests {
    static func header(rank: UInt8, dims: [UInt32]) -> [UInt8] {
        [0, 0, 0x08, rank]
            + dims.flatMap { d in [UInt8(d >> 24), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
    }

    @Test func parsesLabelsAndImages() throws {
        let labels = try IDX.parse(Self.header(rank: 1, dims: [3]) + [7, 8, 9], path: "l")
        #expect(labels.dimensions == [3] && labels.bytes == [7, 8, 9])
        let images = try IDX.parse(Self.header(rank: 3, dims: [2, 2, 3]) + Array(0..<12), path: "i")
        #expect(images.dimensions == [2, 2, 3] && images.bytes.count == 12)
    }

    @Test func readsGzipCompressedFiles() throws {
        // gzip of a rank-1 IDX holding [7, 8, 9] (made with Python's gzip module, mtime 0).
        let path = temporaryPath("labels.gz")
        try Data(hexBytes("1f8b08000000000002036360e0606460606066e7e00400ad980aba0b000000")).write(
            to: URL(fileURLWithPath: path))
        #expect(try IDX.read(path).bytes == [7, 8, 9])
    }

    @Test func corruptAndTruncatedFilesFailClearly() throws {
        func message(_ bytes: [UInt8]) -> String {
            do {
                _ = try IDX.parse(bytes, path: "f")
                return "accepted"
            } catch { return error.message }
        }
        #expect(
            message(Self.header(rank: 1, dims: [5]) + [1, 2]).contains(
                "truncated: the header says 5 = 5 bytes of data, the file holds 2"))
        #expect(message(Self.header(rank: 1, dims: [2]) + [1, 2, 3]).contains("has 1 bytes past its end"))
        #expect(message([1, 0, 8, 1]).contains("bad magic"))
        #expect(message([0, 0, 0x0D, 1, 0, 0, 0, 0]).contains("not unsigned byte"))
        #expect(message([0, 0, 8]).contains("too short"))
        let gz = hexBytes("1f8b08000000000002036360e0606460606066e7e00400ad980aba0b000000")
        #expect {
            try Codecs.gunzip(Array(gz.prefix(gz.count - 12)), path: "cut.gz")
        } throws: { ($0 as! DataError).message.contains("truncated") }
        #expect {
            try Codecs.gunzip([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3, 0xFF, 0xFF, 0xFF, 0xFF], path: "bad.gz")
        } throws: { ($0 as! DataError).message.contains("corrupt") }
    }
}

@Suite struct FashionMNISTTests {
    @Test func loadsDebiansDataSet() throws {
        let train = try FashionMNIST.load(split: .train)
        let test = try FashionMNIST.load(split: .test)
        #expect(train.count == 60_000 && test.count == 10_000)
        #expect(train.height == 28 && train.width == 28)
        for c in 0..<10 { #expect(train.indices(ofClasses: [c]).count == 6_000) }
        let batch = train.tensor([0, 1], size: 32)
        #expect(batch.shape == [2, 1, 32, 32])
        #expect(batch.storage.prefix(64).allSatisfy { $0 == 0 }, "the 2-pixel padding border is zero")
        #expect(batch.storage.contains { $0 > 0.5 })
    }

    @Test func splitsAreDisjointAndLimited() throws {
        let data = LabeledImages(
            pixels: [UInt8](repeating: 0, count: 8), labels: [0, 1, 2, 0, 1, 2, 0, 1], channels: 1, height: 1, width: 1)
        let forget = data.indices(ofClasses: [0])
        let retain = data.indices(ofClasses: [1, 2], perClassLimit: 2)
        #expect(forget == [0, 3, 6])
        #expect(retain == [1, 2, 4, 5])
        #expect(Set(forget).isDisjoint(with: retain))
    }
}

@Suite struct MaskTests {
    @Test(arguments: MaskTransform.Kind.allCases)
    func hiddenAreaMatchesTheRatio(kind: MaskTransform.Kind) {
        var rng = Philox(seed: 1)
        for ratio in [0.0625, 0.25, 0.5] {
            let hidden = MaskTransform(kind: kind, ratio: ratio).hidden(size: 32, rng: &rng)
            let share = Double(hidden.filter { $0 }.count) / 1024
            #expect(abs(share - ratio) < 0.03, "\(kind) \(ratio): \(share)")
        }
    }

    @Test func centreCropOf25PercentIsTheMiddle16x16AndFourByFourPatches() {
        var rng = Philox(seed: 0)
        let hidden = MaskTransform(kind: .centerCrop, ratio: 0.25).hidden(size: 32, rng: &rng)
        for y in 0..<32 {
            for x in 0..<32 { #expect(hidden[y * 32 + x] == ((8..<24).contains(y) && (8..<24).contains(x))) }
        }
        let patches = MaskTransform.hiddenPatches(hidden, size: 32, patch: 4)
        #expect(patches == (2..<6).flatMap { r in (2..<6).map { r * 8 + $0 } })
    }

    @Test func outpaintHidesTheBorder() {
        var rng = Philox(seed: 0)
        let hidden = MaskTransform(kind: .outpaint, ratio: 0.25).hidden(size: 32, rng: &rng)
        #expect(hidden[0] && hidden[31] && hidden[32 * 31])
        #expect(!hidden[16 * 32 + 16])
    }

    @Test func randomBoxesComeFromTheSeededGenerator() {
        var a = Philox(seed: 5)
        var b = Philox(seed: 5)
        var c = Philox(seed: 6)
        let t = MaskTransform(kind: .randomBox, ratio: 0.25)
        let boxes = (0..<5).map { _ in t.hidden(size: 32, rng: &a) }
        #expect(boxes == (0..<5).map { _ in t.hidden(size: 32, rng: &b) })
        #expect(boxes != (0..<5).map { _ in t.hidden(size: 32, rng: &c) })
        #expect(Set(boxes.map { $0.firstIndex(of: true)! }).count > 1, "boxes move")
    }

    @Test func applyFillsOnlyHiddenPixels() {
        let images = Tensor<Float>([Float](repeating: 0.5, count: 2 * 16), shape: [2, 1, 4, 4])
        var hidden = [Bool](repeating: false, count: 16)
        hidden[5] = true
        let masked = MaskTransform.apply(images, hidden: [hidden], fill: -1)
        #expect(masked.storage[5] == -1 && masked.storage[16 + 5] == -1 && masked.storage[4] == 0.5)
    }
}

@Suite struct PNGTests {
    @Test func gridsRoundTripThroughLibpng() throws {
        var rng = Philox(seed: 2)
        let rows = [
            Tensor<Float>.uniform([3, 1, 5, 4], 0, 1, rng: &rng), Tensor<Float>.uniform([3, 1, 5, 4], 0, 1, rng: &rng),
        ]
        let path = temporaryPath("grid.png")
        try ImageGrid.write(rows: rows, to: path)
        let back = try Codecs.readPNG(path)
        #expect(back == ImageGrid.image(rows: rows))
        #expect(back.width == 3 * 4 + 4 * 2 && back.height == 2 * 5 + 3 * 2)
        let pixel = back.pixels[2 * back.width + 2]
        #expect(pixel == UInt8((rows[0].storage[0] * 255).rounded()))
    }

    @Test func corruptPNGsFailClearly() throws {
        let notPNG = temporaryPath("x.png")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: notPNG))
        #expect { try Codecs.readPNG(notPNG) } throws: { ($0 as! DataError).message.contains("not a PNG") }
        let good = temporaryPath("g.png")
        try Codecs.writePNG(
            .init(width: 8, height: 8, channels: 3, pixels: [UInt8](repeating: 9, count: 192)), to: good)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: good)))
        let cut = temporaryPath("cut.png")
        try Data(bytes.prefix(bytes.count / 2)).write(to: URL(fileURLWithPath: cut))
        #expect(throws: DataError.self) { try Codecs.readPNG(cut) }
        #expect { try Codecs.readPNG("/nonexistent/x.png") } throws: {
            ($0 as! DataError).message.contains("no such file or directory")
        }
    }
}
