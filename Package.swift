// swift-tools-version:6.0
import PackageDescription

// No target is built with `-march`: the C kernels exist once per instruction set (portable, AVX2,
// AVX-512; Sources/CShims/isa_*.c) and the process picks the widest its CPU runs (LETHE_ISA names
// another), so one binary runs, and runs fast, on every x86-64 CPU.
/// Generic kernels must specialise for Float in the modules that call them.
let numericSwiftSettings: [SwiftSetting] = [
    .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))
]

let package = Package(
    name: "Lethe",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "lethe", targets: ["lethe"]),
        .library(name: "LetheFiles", targets: ["LetheFiles"]),
        .library(name: "LetheJSON", targets: ["LetheJSON"]),
        .library(name: "LetheSpec", targets: ["LetheSpec"]),
        .library(name: "LetheTensor", targets: ["LetheTensor"]),
        .library(name: "LetheModels", targets: ["LetheModels"]),
        .library(name: "LetheData", targets: ["LetheData"]),
        .library(name: "LetheRuns", targets: ["LetheRuns"]),
        .library(name: "LetheUnlearn", targets: ["LetheUnlearn"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .target(
            name: "CShims",
            exclude: ["kernels"],
            cSettings: [.unsafeFlags(["-O3"], .when(configuration: .release))],
            linkerSettings: [.linkedLibrary("m")]
        ),
        .target(
            name: "CSmallProducts",
            cSettings: [.unsafeFlags(["-O2"], .when(configuration: .release))],
            linkerSettings: [.linkedLibrary("xsmm"), .linkedLibrary("dl"), .linkedLibrary("rt")]
        ),
        .target(
            name: "LetheTensor",
            dependencies: ["CBLAS", "CShims", "CSmallProducts", "LetheJSON"],
            swiftSettings: numericSwiftSettings,
            linkerSettings: [.linkedLibrary("m")]
        ),
        .target(name: "LetheFiles"),
        .target(name: "LetheJSON"),
        .target(
            name: "LetheSpec",
            dependencies: ["CYAML", "LetheFiles", "LetheJSON", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(name: "LetheModels", dependencies: ["LetheTensor"], swiftSettings: numericSwiftSettings),
        .target(name: "CImageIO", linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("z")]),
        .target(
            name: "LetheData", dependencies: ["CImageIO", "LetheFiles", "LetheTensor"],
            swiftSettings: numericSwiftSettings),
        .target(
            name: "LetheRuns", dependencies: ["CShims", "LetheFiles", "LetheSpec", "LetheData", "LetheTensor"],
            swiftSettings: numericSwiftSettings),
        .target(
            name: "LetheUnlearn", dependencies: ["LetheFiles", "LetheSpec", "LetheData", "LetheModels", "LetheRuns"],
            exclude: ["ReportText"],
            swiftSettings: numericSwiftSettings),
        .target(name: "LetheSweep", dependencies: ["LetheFiles", "LetheSpec", "LetheRuns"]),
        .target(name: "LetheFuzz", dependencies: ["LetheSpec", "LetheData", "LetheTensor", "LetheJSON"]),
        .executableTarget(name: "lethe-fuzz", dependencies: ["LetheFuzz"]),
        .executableTarget(
            name: "lethe",
            dependencies: [
                "LetheFiles", "LetheSpec", "LetheTensor", "LetheModels", "LetheData", "LetheRuns", "LetheUnlearn",
                "LetheSweep", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: numericSwiftSettings
        ),
        .testTarget(name: "LetheFilesTests", dependencies: ["LetheFiles"]),
        .testTarget(name: "LetheJSONTests", dependencies: ["LetheJSON"]),
        .testTarget(name: "LetheSpecTests", dependencies: ["LetheSpec", "LetheData"]),
        .testTarget(
            name: "LetheTensorTests", dependencies: ["CBLAS", "CSmallProducts", "LetheTensor"],
            swiftSettings: numericSwiftSettings),
        .testTarget(
            name: "LetheModelsTests", dependencies: ["LetheModels"], exclude: ["Fixtures"],
            swiftSettings: numericSwiftSettings),
        .testTarget(
            name: "LetheDataTests", dependencies: ["LetheData"], exclude: ["Fixtures"],
            swiftSettings: numericSwiftSettings),
        .testTarget(
            name: "LetheRunsTests", dependencies: ["LetheRuns", "LetheUnlearn", "LetheModels"],
            swiftSettings: numericSwiftSettings),
        .testTarget(
            name: "LetheUnlearnTests", dependencies: ["LetheUnlearn", "LetheModels"],
            swiftSettings: numericSwiftSettings),
        .testTarget(name: "LetheCLITests", dependencies: ["lethe", "LetheTensor"], exclude: ["Golden"]),
        .testTarget(name: "LetheFuzzTests", dependencies: ["LetheFuzz"]),
        .testTarget(name: "LetheSweepTests", dependencies: ["LetheSweep", "LetheSpec", "LetheRuns"]),
    ]
)
