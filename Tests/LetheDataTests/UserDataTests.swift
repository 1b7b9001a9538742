import Foundation
import Testing
import LetheTensor
@testable import LetheData

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

@Suite struct NumPyTests {
    /// The arrays make_npz.py wrote: x[i] = (i mod 256) over (12, 6, 5), labels 0 1 2 repeated.
    @Test(arguments: ["small.npz", "small-compressed.npz"])
    func readsStoredAndDeflatedNPZ(file: String) throws {
        let s = try UserData.npz(fixtures + "/" + file, testFraction: 0.5)
        #expect(s.train.count == 12 && s.test.count == 3)
        #expect((s.train.channels, s.train.height, s.train.width) == (1, 6, 5))
        #expect(s.train.pixels == (0..<360).map { UInt8($0 % 256) })
        #expect(s.train.labels == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2] && s.test.labels == [2, 1, 0])
        #expect(s.test.pixels[0] == 255 && s.test.pixels[1] == 254)
    }

    @Test func channelLastFloatsWithoutATestSetHoldOutAShareOfEachClass() throws {
        let s = try UserData.npz(fixtures + "/rgb-float.npz", testFraction: 0.2)
        #expect((s.train.channels, s.train.height, s.train.width) == (3, 4, 4))
        #expect(s.train.count == 8 && s.test.count == 2 && Set(s.test.labels) == [0, 1])
        // Elements are float32((i mod 7) / 6); pixel 0 of image 0 holds elements 0, 1, 2 in its channel planes.
        let levels = (0..<7).map { UInt8((Double(Float(Double($0) / 6)) * 255).rounded()) }
        #expect(s.train.pixels.allSatisfy(levels.contains))
        #expect(
            [s.train.pixels[0], s.train.pixels[16], s.train.pixels[32]] == [levels[0], levels[1], levels[2]],
            "channel-last became planes")
        #expect(
            try UserData.npz(fixtures + "/rgb-float.npz", testFraction: 0.2).test.labels == s.test.labels,
            "the held-out choice is fixed")
    }

    @Test func missingArraysCorruptAndTruncatedFilesAreClearErrors() throws {
        #expect { try UserData.npz(fixtures + "/no-labels.npz", testFraction: 0.1) } throws: {
            "\($0)".contains("needs arrays x_train and y_train")
        }
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixtures + "/small-compressed.npz")))
        let truncated = temporaryPath("t.npz")
        try Data(bytes.prefix(bytes.count - 30)).write(to: URL(fileURLWithPath: truncated))
        #expect(throws: DataError.self) { try UserData.npz(truncated, testFraction: 0.1) }
        var flipped = bytes
        flipped[120] ^= 0xFF  // inside the first deflated member
        let corrupt = temporaryPath("c.npz")
        try Data(flipped).write(to: URL(fileURLWithPath: corrupt))
        #expect { try UserData.npz(corrupt, testFraction: 0.1) } throws: { e in
            let s = "\(e)"
            return s.contains("CRC-32") || s.contains("deflate") || s.contains("corrupt") || s.contains("unpacks")
        }
        let notZip = temporaryPath("n.npz")
        try Data("hello".utf8).write(to: URL(fileURLWithPath: notZip))
        #expect { try UserData.npz(notZip, testFraction: 0.1) } throws: { "\($0)".contains("not a ZIP archive") }
    }

    @Test func npyHeadersAreCheckedStrictly() throws {
        func npy(_ header: String, body: [UInt8]) -> [UInt8] {
            var h = header
            while (10 + h.count + 1) % 64 != 0 { h += " " }
            h += "\n"
            return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count & 0xFF), UInt8(h.count >> 8)] + Array(h.utf8)
                + body
        }
        let ok = try NumPy.parseNPY(
            npy("{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", body: [1, 0, 255, 255, 2, 1]), path: "a")
        #expect(ok.values() == [1, -1, 258])
        #expect {
            try NumPy.parseNPY(
                npy("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", body: Array(repeating: 0, count: 8)),
                path: "b")
        } throws: {
            "\($0)".contains("dtype '<c8' is not supported")
        }
        #expect {
            try NumPy.parseNPY(
                npy("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 2), }", body: [1, 2, 3, 4]), path: "c")
        } throws: {
            "\($0)".contains("Fortran")
        }
        #expect {
            try NumPy.parseNPY(
                npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", body: [1, 2]), path: "d")
        } throws: {
            "\($0)".contains("truncated")
        }
    }
}

@Suite struct ImageFolderTests {
    func makeFolder(_ layout: [String: [(Int, Int)]], channels: Int = 1) throws -> String {
        let root = temporaryPath("folder")
        for (dir, images) in layout {
            try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
            for (i, (w, h)) in images.enumerated() {
                let pixels = (0..<(w * h * channels)).map { UInt8(($0 * 7 + i) % 256) }
                try Codecs.writePNG(
                    Codecs.Image(width: w, height: h, channels: channels, pixels: pixels), to: "\(root)/\(dir)/\(i).png"
                )
            }
        }
        return root
    }

    @Test func classFoldersBecomeLabelsInSortedOrder() throws {
        let root = try makeFolder(["train/cat": [(8, 6), (8, 6)], "train/ant": [(8, 6)], "test/cat": [(8, 6)]])
        let s = try UserData.imageFolder(root, testFraction: 0.1)
        #expect(s.classNames == ["ant", "cat"])
        #expect(s.train.labels == [0, 1, 1] && s.test.labels == [1])
        #expect((s.train.height, s.train.width) == (6, 8))
        #expect(
            s.train.pixels[6 * 8] == 0 && s.train.pixels[6 * 8 + 1] == 7,
            "second image: cat/0.png, pixels (j * 7) mod 256")
    }

    @Test func withoutATestFolderAShareIsHeldOut() throws {
        let root = try makeFolder(
            ["a": Array(repeating: (4, 4), count: 10), "b": Array(repeating: (4, 4), count: 5)], channels: 3)
        let s = try UserData.imageFolder(root, testFraction: 0.2)
        #expect(s.train.channels == 3)
        #expect(s.test.labels.filter { $0 == 0 }.count == 2 && s.test.labels.filter { $0 == 1 }.count == 1)
        #expect(s.train.count + s.test.count == 15)
    }

    @Test func mismatchedSizesAndEmptyFoldersAreClearErrors() throws {
        let root = try makeFolder(["a": [(4, 4), (5, 4)]])
        #expect { try UserData.imageFolder(root, testFraction: 0.1) } throws: {
            "\($0)".contains("is 5x4") && "\($0)".contains("a/1.png")
        }
        let empty = temporaryPath("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        #expect { try UserData.imageFolder(empty, testFraction: 0.1) } throws: {
            "\($0)".contains("no class sub-folders")
        }
        let corrupt = try makeFolder(["a": [(4, 4)]])
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: corrupt + "/a/0.png"))
        #expect(throws: DataError.self) { try UserData.imageFolder(corrupt, testFraction: 0.1) }
    }

    @Test func largeImagesAreScaledDownToFit() {
        let big = LabeledImages(
            pixels: (0..<(64 * 48)).map { UInt8($0 % 2 == 0 ? 0 : 200) }, labels: [0], channels: 1, height: 48,
            width: 64)
        let small = big.fitting(32)
        #expect((small.height, small.width) == (24, 32))
        #expect(small.pixels.allSatisfy { $0 == 100 }, "2x2 area averages of alternating 0/200 columns")
        #expect(big.fitting(64).height == 48, "images that fit are kept as they are")
    }
}

@Suite struct NpyFolderTests {
    @Test func aFolderOfNpyFilesLoadsLikeAnNPZ() throws {
        let s = try UserData.npyFolder(fixtures + "/npy-folder", testFraction: 0.34)
        #expect(s.train.count + s.test.count == 6 && s.test.count == 2 && Set(s.test.labels) == [0, 1])
        #expect((s.train.height, s.train.width) == (4, 4))
        #expect { try UserData.npyFolder(fixtures, testFraction: 0.1) } throws: {
            "\($0)".contains("needs arrays x_train and y_train")
        }
    }
}

/// Data files that parse but cannot be used, or that lie about their size: a clear error naming the
/// file, never a trap, a hang or an allocation of the size a header claims.
@Suite struct HostileDataTests {
    func npy(_ header: String, body: [UInt8]) -> [UInt8] {
        var h = header
        while (10 + h.count + 1) % 64 != 0 { h += " " }
        h += "\n"
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count & 0xFF), UInt8(h.count >> 8)] + Array(h.utf8) + body
    }

    func folder(_ files: [String: [UInt8]]) throws -> String {
        let root = temporaryPath("npy")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        for (name, bytes) in files { try Data(bytes).write(to: URL(fileURLWithPath: root + "/" + name)) }
        return root
    }

    @Test func zeroSamplesAndOverflowingShapesAreErrors() throws {
        let empty = try folder([
            "x_train.npy": npy("{'descr': '|u1', 'fortran_order': False, 'shape': (0, 4, 4), }", body: []),
            "y_train.npy": npy("{'descr': '|u1', 'fortran_order': False, 'shape': (0,), }", body: []),
        ])
        #expect { try UserData.npyFolder(empty, testFraction: 0.1) } throws: {
            "\($0)".contains("x_train holds no images")
        }
        let huge = npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904, 16), }",
            body: [1, 2, 3])
        #expect { try NumPy.parseNPY(huge, path: "h") } throws: { "\($0)".contains("truncated") }
        let lying = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000, 28, 28), }", body: [1, 2, 3])
        #expect { try NumPy.parseNPY(lying, path: "l") } throws: { "\($0)".contains("truncated") }
    }

    @Test func labelsOutsideTheClassRangeAreErrors() throws {
        var label: [UInt8] = Array(repeating: 0, count: 8)
        label[7] = 0x40  // 2^62, little-endian
        let root = try folder([
            "x_train.npy": npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 2), }", body: [1, 2, 3, 4]),
            "y_train.npy": npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", body: label),
        ])
        #expect { try UserData.npyFolder(root, testFraction: 0.1) } throws: {
            "\($0)".contains("y_train[0] = 4611686018427387904; labels must lie in 0..<100000")
        }
    }

    @Test func anImageFolderClassWithoutImagesIsAnError() throws {
        let root = temporaryPath("classes")
        try FileManager.default.createDirectory(atPath: root + "/a", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/b", withIntermediateDirectories: true)
        try Codecs.writePNG(
            Codecs.Image(width: 2, height: 2, channels: 1, pixels: [1, 2, 3, 4]), to: root + "/a/0.png")
        #expect { try UserData.imageFolder(root, testFraction: 0.1) } throws: {
            "\($0)".contains("class folder 'b' holds no PNG images")
        }
    }

    @Test func devicesAndFIFOsAreNotRead() throws {
        #expect { try UserData.npz("/dev/zero", testFraction: 0.1) } throws: { "\($0)".contains("character device") }
        #expect { try IDX.read("/dev/zero") } throws: { "\($0)".contains("character device") }
        let root = temporaryPath("fifo")
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        #expect(mkfifo(root + "/a.png", 0o644) == 0)
        #expect { try Codecs.readPNG(root + "/a.png") } throws: { "\($0)".contains("FIFO") }
    }

    @Test func corruptZipDirectoriesAreErrorsNotTraps() throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixtures + "/small.npz")))
        // Overwrite each field of the end-of-central-directory record with 0xFF bytes in turn.
        let eocd = bytes.count - 22
        for field in stride(from: 4, to: 22, by: 2) {
            var broken = bytes
            broken[eocd + field] = 0xFF
            broken[eocd + field + 1] = 0xFF
            do { _ = try Zip.members(broken, path: "z") } catch {}
        }
        // A central directory offset past the end of the file.
        var far = bytes
        for i in 16..<20 { far[eocd + i] = 0xFF }
        #expect(throws: DataError.self) { try Zip.members(far, path: "z") }
    }

    @Test func aGridOfNaNImagesIsWrittenNotATrap() throws {
        let nan = Tensor<Float>([Float](repeating: .nan, count: 16), shape: [1, 1, 4, 4])
        let path = temporaryPath("nan.png")
        try ImageGrid.write(rows: [nan], to: path)
        let grid = try Codecs.readPNG(path)
        #expect(grid.pixels.contains(0), "NaN pixels are drawn black")
    }
}
