global using Xunit;
global using OrleansFlashSale;
